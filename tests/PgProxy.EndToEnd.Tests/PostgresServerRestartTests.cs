using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests;

/// <summary>A server of its own can be taken down and brought back, as upstream-outage tests will do.</summary>
public sealed class PostgresServerRestartTests : IDisposable
{
    private readonly CancellationTokenSource _testDeadline = new(TimeSpan.FromSeconds(120));

    private CancellationToken Cancellation => _testDeadline.Token;

    public void Dispose() => _testDeadline.Dispose();

    [Fact]
    public async Task A_stopped_server_refuses_connections_and_accepts_them_again_on_the_same_port_after_start()
    {
        await using var server = await PostgresServer.StartNewAsync(Cancellation);
        var connectionString = server.ConnectionString(PostgresServer.TrustUser);
        var port = server.Port;

        await server.StopAsync(Cancellation);
        await Assert.ThrowsAsync<NpgsqlException>(() => SelectOneAsync(connectionString));

        await server.StartAsync(Cancellation);
        await Waiting.WaitUntilAsync(
            async () => await SelectOneAsync(connectionString) == 1,
            TimeSpan.FromSeconds(30),
            "the restarted server answers a query",
            Cancellation);
        Assert.Equal(port, server.Port);
    }

    private async Task<int> SelectOneAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(Cancellation);
        await using var command = new NpgsqlCommand("SELECT 1", connection);
        return (int)(await command.ExecuteScalarAsync(Cancellation))!;
    }
}
