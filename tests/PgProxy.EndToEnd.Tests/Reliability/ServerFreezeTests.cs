using System.Diagnostics;
using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>
/// PostgreSQL frozen with SIGSTOP, on a server of its own: what PgProxy bounds while it is frozen (new logins, by
/// server-login-timeout; cancel requests, which still reach the postmaster when only a backend is frozen), what it
/// cannot bound (a statement in flight: the server's kernel still acknowledges, so keepalive never fires), and that
/// the sessions that were open keep working after SIGCONT.
/// </summary>
public sealed class ServerFreezeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan LoginTimeout = TimeSpan.FromSeconds(1);

    private static readonly KeepaliveConfig Keepalive = new() { Idle = TimeSpan.FromSeconds(1), Interval = TimeSpan.FromSeconds(1), Count = 2 };

    [Fact]
    public async Task While_the_whole_server_is_frozen_new_logins_fail_within_server_login_timeout_and_after_SIGCONT_the_open_sessions_go_on()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await using PostgresServer server = await PostgresServer.StartNewAsync(deadline.Token);
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Config(server));
        string connectionString = proxy.ConnectionString(PostgresServer.TrustUser);
        await using var idle = new NpgsqlConnection(connectionString);
        await idle.OpenAsync(deadline.Token);
        await using var busy = new NpgsqlConnection(connectionString);
        await busy.OpenAsync(deadline.Token);
        Task<object?> inFlight = new NpgsqlCommand("SELECT 'slept' FROM pg_sleep(1)", busy).ExecuteScalarAsync(deadline.Token);
        await Waiting.WaitUntilAsync(
            async () => await server.QueryAsSuperuserAsync("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT ''slept'' FROM pg_sleep%' AND state = 'active'", deadline.Token) == "1",
            TimeSpan.FromSeconds(10),
            "the statement to be running");
        IReadOnlyList<int> frozen = ServerProcesses.All(server);
        var attempts = new List<TimeSpan>();
        var clock = Stopwatch.StartNew();
        await ServerProcesses.SignalAsync("STOP", frozen);
        try
        {
            // Frozen for longer than the keepalive bound (idle + interval × count = 3 s): the time is spent on new logins.
            TimeSpan keepaliveBound = Keepalive.Bound!.Value + TimeSpan.FromSeconds(1);
            while (clock.Elapsed < keepaliveBound)
            {
                var attempt = Stopwatch.StartNew();
                // A raw client: Npgsql opens a second connection after an 08001 at start-up, which doubles what it waits.
                await using RawPgClient late = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
                await late.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)));
                RawMessage refused = await late.ReadMessageAsync(TimeSpan.FromSeconds(10));
                attempts.Add(attempt.Elapsed);
                Assert.Equal('E', refused.Code);
                Assert.Equal("08001", refused.SqlState);
                Assert.Contains("(server-login-timeout)", refused.Fields()['M'], StringComparison.Ordinal);
            }

            Assert.False(inFlight.IsCompleted, "the statement in flight must wait for the frozen server, not fail");
        }
        finally
        {
            // Listed again: no process of the server may stay stopped, or the fixture cannot stop it.
            await ServerProcesses.SignalAsync("CONT", frozen.Union(ServerProcesses.All(server)));
        }

        TimeSpan frozenFor = clock.Elapsed;
        object? slept = await inFlight.WaitAsync(TimeSpan.FromSeconds(10));
        object? stillThere = await new NpgsqlCommand("SELECT 'still there'", idle).ExecuteScalarAsync(deadline.Token);
        await using var after = new NpgsqlConnection(connectionString);
        await after.OpenAsync(deadline.Token);

        output.WriteLine($"frozen {frozenFor.TotalMilliseconds:0} ms: {attempts.Count} new logins failed with 08001 after {string.Join(", ", attempts.Select(a => $"{a.TotalMilliseconds:0}"))} ms (server-login-timeout 1 s); the statement in flight and the idle session survived");
        Assert.NotEmpty(attempts);
        Assert.All(attempts, a => Assert.True(a < LoginTimeout + TimeSpan.FromSeconds(1), $"a new login failed only after {a}"));
        Assert.Equal("slept", slept);
        Assert.Equal("still there", stillThere);
        await Waiting.WaitUntilAsync(() => Task.FromResult(proxy.Server.ActiveSessions == 3), TimeSpan.FromSeconds(10), "only the three open sessions to be left in the proxy");
    }

    [Fact]
    public async Task A_cancel_request_reaches_a_server_whose_backend_is_frozen_and_takes_effect_at_SIGCONT()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await using PostgresServer server = await PostgresServer.StartNewAsync(deadline.Token);
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Config(server));
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync(deadline.Token);
        int backend = (int)(await new NpgsqlCommand("SELECT pg_backend_pid()", connection).ExecuteScalarAsync(deadline.Token))!;
        await using var sleep = new NpgsqlCommand("SELECT pg_sleep(60)", connection);
        Task<object?> inFlight = sleep.ExecuteScalarAsync(deadline.Token);
        await Waiting.WaitUntilAsync(
            async () => await server.QueryAsSuperuserAsync($"SELECT state FROM pg_stat_activity WHERE pid = {backend}", deadline.Token) == "active",
            TimeSpan.FromSeconds(10),
            "the statement to be running");
        await ServerProcesses.SignalAsync("STOP", [backend]);
        TimeSpan cancelled;
        try
        {
            sleep.Cancel();
            await Waiting.WaitUntilAsync(
                () => Task.FromResult(proxy.Logs.Lines.Any(line => line.Contains("cancel request from", StringComparison.Ordinal) && line.Contains("forwarded to postgresql", StringComparison.Ordinal))),
                TimeSpan.FromSeconds(10),
                "the proxy to forward the cancel request");
            Assert.False(inFlight.IsCompleted, "the frozen backend cannot have answered yet");
        }
        finally
        {
            await ServerProcesses.SignalAsync("CONT", [backend]);
        }

        var clock = Stopwatch.StartNew();
        Exception? thrown = await Record.ExceptionAsync(() => inFlight.WaitAsync(TimeSpan.FromSeconds(30)));
        // Npgsql reports a cancel it sent itself as OperationCanceledException around the server's 57014.
        PostgresException failure = Assert.IsType<PostgresException>(Assert.IsType<OperationCanceledException>(thrown).InnerException);
        cancelled = clock.Elapsed;
        object? after = await new NpgsqlCommand("SELECT 'after'", connection).ExecuteScalarAsync(deadline.Token);

        output.WriteLine($"the cancel forwarded while the backend was frozen ended its statement {cancelled.TotalMilliseconds:0} ms after SIGCONT");
        Assert.Equal("57014", failure.SqlState);
        Assert.True(cancelled < TimeSpan.FromSeconds(5), $"the statement ended only {cancelled} after SIGCONT");
        Assert.Equal("after", after);
    }

    private static ProxyConfig Config(PostgresServer server)
    {
        ProxyConfig config = TestConfigs.Relay(
            server.Host, server.Port, InstanceLimits.Default with { ServerLoginTimeout = LoginTimeout, ConnectTimeout = 2 * LoginTimeout });
        return config with { Instances = [config.Instances[0] with { RedirectKeepalive = Keepalive }] };
    }
}
