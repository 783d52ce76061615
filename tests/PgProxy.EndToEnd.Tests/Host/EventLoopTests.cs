using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>
/// The pgproxy process relays on its own epoll event loops by default, and on .NET's socket engine when
/// PGPROXY_EVENT_LOOPS is 0; sessions behave the same either way.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class EventLoopTests(PostgresFixture fixture)
{
    [Theory]
    [InlineData(null, -1)]
    [InlineData("3", 3)]
    [InlineData("0", 0)]
    public async Task Sessions_run_on_the_configured_number_of_event_loops(string? configured, int expectedLoops)
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        Dictionary<string, string> environment = configured is null ? [] : new() { ["PGPROXY_EVENT_LOOPS"] = configured };
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, environment: environment);

        // Several sessions at once, each with a result larger than a socket buffer and a multi-statement query.
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = proxy.PortOf("proxy"),
            Username = PostgresServer.TrustUser,
            Database = "postgres",
            Pooling = false,
        };
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async i =>
        {
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT sum(length(repeat('x', g))) FROM generate_series(1, 2000) g", connection);
            Assert.Equal(2001000L, await command.ExecuteScalarAsync());
            await using var rows = new NpgsqlCommand($"SELECT g, repeat('y', 100) FROM generate_series(1, 20000) g WHERE g > {i}", connection);
            await using NpgsqlDataReader reader = await rows.ExecuteReaderAsync();
            int count = 0;
            while (await reader.ReadAsync())
            {
                count++;
            }

            Assert.Equal(20000 - i, count);
        }));

        int loops = Directory.EnumerateDirectories($"/proc/{proxy.ProcessId}/task")
            .Count(task => File.ReadAllText(Path.Combine(task, "comm")).StartsWith("PgProxy loop", StringComparison.Ordinal));
        // The default: one loop per core.
        Assert.Equal(expectedLoops < 0 ? Environment.ProcessorCount : expectedLoops, loops);
    }

    [Theory]
    [InlineData("many")]
    [InlineData("-1")]
    [InlineData("1000")]
    public async Task A_malformed_PGPROXY_EVENT_LOOPS_is_refused_by_check_naming_it(string configured)
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        ProcessResult result = await ProcessRunner.RunAsync(
            "dotnet",
            [ProxyProcess.AssemblyPath, "check", "--config", directory.ConfigFile],
            TimeSpan.FromSeconds(60),
            environment: new Dictionary<string, string?> { ["PGPROXY_EVENT_LOOPS"] = configured });

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"PGPROXY_EVENT_LOOPS=\"{configured}\": expected the number of event loops, 0 to 256", result.StandardError, StringComparison.Ordinal);
    }
}
