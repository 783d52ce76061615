using System.Diagnostics;
using System.Runtime.InteropServices;
using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>How the pgproxy process ends: on SIGINT and SIGTERM it closes sessions like PostgreSQL does and exits 0; SIGHUP does not end it.</summary>
[Collection(SharedPostgres.Name)]
public sealed class ShutdownTests(PostgresFixture fixture)
{
    private static readonly TimeSpan PromptExit = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData(PosixSignal.SIGTERM)]
    [InlineData(PosixSignal.SIGINT)]
    public async Task A_stop_signal_without_sessions_exits_0_promptly(PosixSignal signal)
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);

        var clock = Stopwatch.StartNew();
        await proxy.SignalAsync(signal);
        int exitCode = await proxy.WaitForExitAsync(PromptExit);

        Assert.True(exitCode == 0, $"exit code {exitCode}:\n{proxy.Output}");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed} to exit");
        Assert.Contains("PgProxy stopped", proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SIGTERM_ends_an_idle_session_with_57P01_and_exits_0()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        string applicationName = UniqueName("idle");
        await using RawPgClient client = await StartSessionAsync(proxy, applicationName);

        await proxy.SignalAsync(PosixSignal.SIGTERM);

        RawMessage message = await client.ReadMessageAsync();
        Assert.Equal('E', message.Code);
        Assert.Equal("57P01", message.SqlState);
        Assert.Equal("FATAL", message.Fields()['S']);
        Assert.True(await client.IsClosedByPeerAsync(), "the proxy must close the connection after 57P01");
        Assert.Equal(0, await proxy.WaitForExitAsync(PromptExit));
        await WaitUntilNoBackendAsync(applicationName);
    }

    [Fact]
    public async Task SIGTERM_ends_an_idle_Npgsql_session_and_exits_0()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        string applicationName = UniqueName("npgsql");
        await using var connection = new NpgsqlConnection(proxy.NpgsqlConnectionString(applicationName));
        await connection.OpenAsync();
        await WaitUntilBackendCountAsync(applicationName, 1);

        await proxy.SignalAsync(PosixSignal.SIGTERM);

        Assert.Equal(0, await proxy.WaitForExitAsync(PromptExit));
        await WaitUntilNoBackendAsync(applicationName);
        await using var command = new NpgsqlCommand("SELECT 1", connection);
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task SIGTERM_lets_a_running_query_finish_then_ends_the_session_with_57P01()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server, "  shutdown-timeout: 20s"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        string applicationName = UniqueName("busy");
        await using RawPgClient client = await StartSessionAsync(proxy, applicationName);

        await client.SendAsync(RawPgClient.Query("SELECT pg_sleep(2), 'finished' AS outcome"));
        await Waiting.WaitUntilAsync(
            async () => await ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{applicationName}' AND state = 'active' AND query LIKE '%pg_sleep%'") == 1,
            TimeSpan.FromSeconds(10),
            "the query runs on the server");
        await proxy.SignalAsync(PosixSignal.SIGTERM);

        var messages = new List<RawMessage>();
        while (messages.Count == 0 || messages[^1].Code != 'E')
        {
            messages.Add(await client.ReadMessageAsync(TimeSpan.FromSeconds(20)));
        }

        Assert.Equal("TDCZE", string.Concat(messages.Select(m => m.Code)));
        Assert.Contains("finished", System.Text.Encoding.UTF8.GetString(messages[1].Body), StringComparison.Ordinal);
        Assert.Equal("57P01", messages[^1].SqlState);
        Assert.True(await client.IsClosedByPeerAsync(), "the proxy must close the connection after 57P01");
        Assert.Equal(0, await proxy.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        await WaitUntilNoBackendAsync(applicationName);
    }

    [Fact]
    public async Task A_query_still_running_at_shutdown_timeout_is_cut_with_57P01_and_the_process_exits_0()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server, "  shutdown-timeout: 1s"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        string applicationName = UniqueName("forced");
        await using RawPgClient client = await StartSessionAsync(proxy, applicationName);

        await client.SendAsync(RawPgClient.Query("SELECT pg_sleep(8)"));
        await Waiting.WaitUntilAsync(
            async () => await ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{applicationName}' AND state = 'active' AND query LIKE '%pg_sleep%'") == 1,
            TimeSpan.FromSeconds(10),
            "the query runs on the server");
        var clock = Stopwatch.StartNew();
        await proxy.SignalAsync(PosixSignal.SIGTERM);

        // The result is 8 s away: what arrives first is the proxy's 57P01, once the 1 s shutdown-timeout has passed.
        RawMessage message = await client.ReadMessageAsync(TimeSpan.FromSeconds(6));
        Assert.Equal('E', message.Code);
        Assert.Equal("57P01", message.SqlState);
        Assert.True(await client.IsClosedByPeerAsync(), "the proxy must close the connection after 57P01");
        Assert.Equal(0, await proxy.WaitForExitAsync(PromptExit));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(6), $"took {clock.Elapsed} to exit with a 1 s shutdown-timeout");

        // The server notices the closed connection when the sleep ends and it writes the result.
        await Waiting.WaitUntilAsync(
            async () => await ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{applicationName}'") == 0,
            TimeSpan.FromSeconds(20),
            $"no backend of {applicationName} remains");
    }

    [Fact]
    public async Task SIGHUP_does_not_end_the_process_and_it_keeps_serving()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);

        await proxy.SignalAsync(PosixSignal.SIGHUP);
        await proxy.WaitForOutputAsync(
            output => output.Contains("Configuration reloaded", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10),
            "pgproxy logs that it reloaded");
        Assert.False(proxy.HasExited, proxy.Output);

        await using RawPgClient client = await StartSessionAsync(proxy, UniqueName("hup"));
        await client.SendAsync(RawPgClient.Query("SELECT 1"));
        List<RawMessage> answer = await client.ReadUntilReadyAsync();
        Assert.Equal("TDCZ", string.Concat(answer.Select(m => m.Code)));
        Assert.False(proxy.HasExited);
    }

    private static string UniqueName(string what) => $"shutdown-{what}-{Guid.NewGuid():N}"[..30];

    private static Task<RawPgClient> StartSessionAsync(ProxyProcess proxy, string applicationName) =>
        RawPgClient.ConnectTrustSessionAsync("127.0.0.1", proxy.PortOf("proxy"), applicationName);

    private async Task<T> ScalarAsync<T>(string sql)
    {
        await using var connection = new NpgsqlConnection(fixture.Server.ConnectionString(PostgresServer.Superuser));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private Task WaitUntilBackendCountAsync(string applicationName, long count) =>
        Waiting.WaitUntilAsync(
            async () => await ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{applicationName}'") == count,
            TimeSpan.FromSeconds(10),
            $"{count} backend(s) of {applicationName} in pg_stat_activity");

    private Task WaitUntilNoBackendAsync(string applicationName) => WaitUntilBackendCountAsync(applicationName, 0);
}
