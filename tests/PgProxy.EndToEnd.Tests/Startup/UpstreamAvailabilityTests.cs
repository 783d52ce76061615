using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Startup;

/// <summary>
/// The upstream goes down and comes back while the proxy runs: new clients are told why (08001), sessions on the
/// lost server are closed, and the proxy relays again once the server is back. Uses a server of its own.
/// </summary>
public sealed class UpstreamAvailabilityTests : IDisposable
{
    private readonly CancellationTokenSource testDeadline = new(TimeSpan.FromSeconds(120));

    private CancellationToken Cancellation => testDeadline.Token;

    public void Dispose() => testDeadline.Dispose();

    [Fact]
    public async Task Upstream_down_gives_08001_and_closes_existing_sessions_and_back_up_serves_again()
    {
        await using PostgresServer server = await PostgresServer.StartNewAsync(Cancellation);
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(server, cancellationToken: Cancellation);
        string connectionString = proxy.ConnectionString(PostgresServer.TrustUser);

        await using var existing = new NpgsqlConnection(connectionString);
        await existing.OpenAsync(Cancellation);
        Assert.Equal(1, await SelectOneAsync(existing));
        await using RawPgClient idle = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await idle.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);

        await server.StopAsync(Cancellation);

        PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => OpenAndSelectOneAsync(connectionString));
        Assert.Equal("08001", refused.SqlState);
        Assert.Equal("FATAL", refused.Severity);
        Assert.Contains("\"postgresql\"", refused.MessageText, StringComparison.Ordinal);

        // The session whose backend was stopped is closed, not left hanging.
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => SelectOneAsync(existing));
        Assert.True(await idle.IsClosedByPeerAsync(TimeSpan.FromSeconds(20)), "an idle session on the stopped server is closed by the proxy");

        await server.StartAsync(Cancellation);
        Assert.Equal(1, await OpenAndSelectOneAsync(connectionString));
    }

    private async Task<int> OpenAndSelectOneAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(Cancellation);
        return await SelectOneAsync(connection);
    }

    private async Task<int> SelectOneAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand("SELECT 1", connection);
        return (int)(await command.ExecuteScalarAsync(Cancellation))!;
    }
}
