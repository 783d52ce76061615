using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.EndToEnd.Tests.Relay;

namespace PgProxy.EndToEnd.Tests.Admin;

/// <summary>SHOW SESSIONS shows what real sessions are doing; KILL and CANCEL act on them and on their server backends.</summary>
[Collection(SharedPostgres.Name)]
public sealed class ConsoleSessionsTests(PostgresFixture fixture) : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private readonly ConsoleSetup console = ConsoleSetup.Create();

    public void Dispose() => console.Dispose();

    [Fact]
    public async Task Show_sessions_lists_each_session_with_its_state_identity_and_bytes()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        string prefix = Backends.UniqueApplicationName("states");
        await using RawPgClient idle = await SessionAsync(proxy, $"{prefix}-idle");
        await using RawPgClient inTransaction = await SessionAsync(proxy, $"{prefix}-tx");
        await using RawPgClient active = await SessionAsync(proxy, $"{prefix}-active");
        await QueryAsync(inTransaction, "BEGIN");
        await active.SendAsync(RawPgClient.Query("SELECT pg_sleep(60)"));

        ConsoleOutput sessions = await WaitForStatesAsync(proxy, prefix, ("idle", "idle"), ("tx", "idle in transaction"), ("active", "active"));

        IReadOnlyList<string> row = sessions.Where("application_name", $"{prefix}-idle").Single();
        Assert.Equal("proxy", sessions.Value(row, "instance"));
        Assert.Equal(PostgresServer.TrustUser, sessions.Value(row, "user"));
        Assert.Equal(PostgresServer.Database, sessions.Value(row, "database"));
        Assert.StartsWith("127.0.0.1:", sessions.Value(row, "client"), StringComparison.Ordinal);
        Assert.Equal(("off", "off"), (sessions.Value(row, "client_tls"), sessions.Value(row, "server_tls")));
        Assert.Matches(@"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+00$", sessions.Value(row, "since"));
        Assert.True(ConsolePsql.Number(sessions.Value(row, "bytes_to_client")) > 0);
        Assert.Equal(0, ConsolePsql.Number(sessions.Value(row, "bytes_from_client")));
        IReadOnlyList<string> transaction = sessions.Where("application_name", $"{prefix}-tx").Single();
        Assert.True(ConsolePsql.Number(sessions.Value(transaction, "bytes_from_client")) > 0, "BEGIN went through the relay");

        // An idle session runs nothing; the active one shows its statement normalized (no literal) and its fingerprint.
        Assert.Equal((string.Empty, string.Empty), (sessions.Value(row, "fingerprint"), sessions.Value(row, "statement")));
        IReadOnlyList<string> running = sessions.Where("application_name", $"{prefix}-active").Single();
        Assert.Equal("SELECT pg_sleep($1)", sessions.Value(running, "statement"));
        Assert.Matches("^[0-9a-f]{16}$", sessions.Value(running, "fingerprint"));

        ConsoleOutput instances = await ConsolePsql.QueryAsync(ConsoleSetup.Target(proxy), "SHOW INSTANCES");
        Assert.Equal("3", instances.Value(instances.Rows.Single(), "sessions"));
    }

    [Fact]
    public async Task The_ids_are_ordered_and_an_application_name_set_later_is_shown()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        string name = Backends.UniqueApplicationName("renamed");
        await using RawPgClient first = await SessionAsync(proxy, "first");
        await using RawPgClient client = await SessionAsync(proxy, "before");
        await QueryAsync(client, $"SET application_name = '{name}'");

        ConsoleOutput sessions = await ConsolePsql.QueryAsync(ConsoleSetup.Target(proxy), "SHOW SESSIONS");

        Assert.Single(sessions.Where("application_name", name));
        long[] ids = [.. sessions.Rows.Select(row => ConsolePsql.Number(row[0]))];
        Assert.Equal(ids.Order(), ids);
    }

    [Fact]
    public async Task Kill_ends_an_idle_session_with_57P01_and_its_server_backend_goes()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        string name = Backends.UniqueApplicationName("kill-idle");
        await using RawPgClient client = await SessionAsync(proxy, name);
        string id = await IdOfAsync(proxy, name);

        ProcessResult kill = await Psql.RunAsync(ConsoleSetup.Target(proxy), $"KILL {id};\n");

        Assert.True(kill.Succeeded, kill.ToString());
        Assert.Equal("KILL", kill.StandardOutput.Trim());
        RawMessage message = await client.ReadMessageAsync();
        Assert.Equal(('E', "57P01", "FATAL"), (message.Code, message.SqlState, message.Fields()['S']));
        Assert.Equal("terminating connection due to administrator command", message.Fields()['M']);
        Assert.True(await client.IsClosedByPeerAsync(), "the proxy closes the connection after 57P01");
        await Backends.WaitUntilGoneAsync(fixture.Server, name);
        await proxy.Logs.WaitForLineAsync(line => line.Contains($"Session {id} closed", StringComparison.Ordinal) && line.Contains("(killed from the admin console)", StringComparison.Ordinal), Deadline, "the close line names the KILL");
    }

    [Fact]
    public async Task Kill_ends_a_session_running_a_statement_and_the_statement_is_cancelled_on_the_server()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        string name = Backends.UniqueApplicationName("kill-busy");
        await using RawPgClient client = await SessionAsync(proxy, name);
        await client.SendAsync(RawPgClient.Query("SELECT pg_sleep(60)"));
        await Backends.WaitUntilCountAsync(fixture.Server, name, 1, state: "active");
        string id = await IdOfAsync(proxy, name);

        ProcessResult kill = await Psql.RunAsync(ConsoleSetup.Target(proxy), $"kill {id}\n");

        Assert.True(kill.Succeeded, kill.ToString());
        RawMessage message = await client.ReadMessageAsync();
        Assert.Equal(('E', "57P01"), (message.Code, message.SqlState));
        Assert.True(await client.IsClosedByPeerAsync(), "the proxy closes the connection after 57P01");

        // Well before the 60 s sleep would end: the KILL cancelled it, and the backend saw its connection closed.
        await Backends.WaitUntilGoneAsync(fixture.Server, name);
    }

    [Fact]
    public async Task Cancel_stops_a_running_pg_sleep_with_57014_and_the_session_goes_on()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        string name = Backends.UniqueApplicationName("cancel");
        await using var connection = new NpgsqlConnection(Backends.WithApplicationName(proxy.ConnectionString(PostgresServer.TrustUser), name));
        await connection.OpenAsync();
        await using var sleep = new NpgsqlCommand("SELECT pg_sleep(60)", connection);
        Task<object?> running = sleep.ExecuteScalarAsync();
        await WaitForStatesAsync(proxy, name, (string.Empty, "active"));
        string id = await IdOfAsync(proxy, name);

        ProcessResult cancel = await Psql.RunAsync(ConsoleSetup.Target(proxy), $"CANCEL {id};\n");

        Assert.True(cancel.Succeeded, cancel.ToString());
        Assert.Equal("CANCEL", cancel.StandardOutput.Trim());
        PostgresException error = await Assert.ThrowsAsync<PostgresException>(() => running);
        Assert.Equal(PostgresErrorCodes.QueryCanceled, error.SqlState);
        await using var after = new NpgsqlCommand("SELECT 'still here'", connection);
        Assert.Equal("still here", await after.ExecuteScalarAsync());
        await WaitForStatesAsync(proxy, name, (string.Empty, "idle"));
    }

    [Fact]
    public async Task A_session_still_logging_in_is_waiting_and_has_no_statement_to_cancel()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        // An md5 user's start-up: the server asks for a password, which never comes.
        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.Md5User), ("database", PostgresServer.Database), ("application_name", "stuck")));
        Assert.Equal('R', (await client.ReadMessageAsync()).Code);

        ConsoleOutput sessions = await ConsolePsql.QueryAsync(ConsoleSetup.Target(proxy), "SHOW SESSIONS");
        IReadOnlyList<string> row = sessions.Where("user", PostgresServer.Md5User).Single();
        Assert.Equal("waiting", sessions.Value(row, "state"));
        Assert.Equal("off", sessions.Value(row, "server_tls"));

        ProcessResult cancel = await Psql.RunAsync(ConsoleSetup.Target(proxy), $"\\set VERBOSITY verbose\nCANCEL {row[0]};\n", new PsqlOptions { OnErrorStop = false });
        Assert.Contains("ERROR:  55000:", cancel.StandardError, StringComparison.Ordinal);
    }

    private static async Task<ConsoleOutput> WaitForStatesAsync(ProxyHarness proxy, string prefix, params (string Suffix, string State)[] expected)
    {
        ConsoleOutput? last = null;
        await Waiting.WaitUntilAsync(
            async () =>
            {
                last = await ConsolePsql.QueryAsync(ConsoleSetup.Target(proxy), "SHOW SESSIONS");
                return expected.All(e => last.Where("application_name", e.Suffix.Length == 0 ? prefix : $"{prefix}-{e.Suffix}").SingleOrDefault() is { } row && last.Value(row, "state") == e.State);
            },
            Deadline,
            $"SHOW SESSIONS shows {string.Join(", ", expected.Select(e => $"{e.Suffix}: {e.State}"))}");
        return last!;
    }

    private static async Task<string> IdOfAsync(ProxyHarness proxy, string applicationName)
    {
        ConsoleOutput sessions = await ConsolePsql.QueryAsync(ConsoleSetup.Target(proxy), "SHOW SESSIONS");
        return sessions.Where("application_name", applicationName).Single()[0];
    }

    private static Task<RawPgClient> SessionAsync(ProxyHarness proxy, string applicationName) =>
        RawPgClient.ConnectTrustSessionAsync(proxy.Host, proxy.Port, applicationName);

    private static async Task QueryAsync(RawPgClient client, string sql)
    {
        await client.SendAsync(RawPgClient.Query(sql));
        List<RawMessage> answer = await client.ReadUntilReadyAsync();
        Assert.DoesNotContain(answer, m => m.Code == 'E');
    }
}
