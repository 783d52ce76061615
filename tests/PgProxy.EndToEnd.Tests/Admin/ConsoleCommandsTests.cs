using PgProxy.Core.Admin;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Admin;

/// <summary>psql runs every console command, on the console's own listener and as database pgproxy of an instance, and reads tables back.</summary>
[Collection(SharedPostgres.Name)]
public sealed class ConsoleCommandsTests(PostgresFixture fixture) : IDisposable
{
    private readonly ConsoleSetup console = ConsoleSetup.Create();

    public void Dispose() => console.Dispose();

    public static TheoryData<string, bool> CommandsWithRows()
    {
        var data = new TheoryData<string, bool>();
        foreach (ConsoleCommandInfo command in ConsoleCatalog.All.Where(c => c.Columns is not null))
        {
            data.Add(command.Syntax.Split(" [", StringSplitOptions.None)[0], true);
            data.Add(command.Syntax.Split(" [", StringSplitOptions.None)[0].ToLowerInvariant() + ";", false);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(CommandsWithRows))]
    public async Task Each_command_with_rows_prints_its_documented_columns_in_order(string command, bool dedicated)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));

        ConsoleOutput output = await ConsolePsql.QueryAsync(ConsoleSetup.Target(proxy, dedicated), command);

        ConsoleCommandInfo info = ConsoleCatalog.All.Single(c => command.StartsWith(c.Syntax.Split(" [", StringSplitOptions.None)[0], StringComparison.OrdinalIgnoreCase));
        Assert.Equal(info.Columns, output.Columns);
        Assert.All(output.Rows, row => Assert.Equal(info.Columns!.Count, row.Count));
    }

    [Fact]
    public async Task Show_help_version_instances_and_config_describe_the_running_proxy()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        PsqlTarget target = ConsoleSetup.Target(proxy);

        ConsoleOutput help = await ConsolePsql.QueryAsync(target, "SHOW HELP");
        ConsoleOutput version = await ConsolePsql.QueryAsync(target, "show version");
        ConsoleOutput instances = await ConsolePsql.QueryAsync(target, "SHOW INSTANCES;");
        ConsoleOutput config = await ConsolePsql.QueryAsync(target, "SHOW CONFIG");

        Assert.Equal(ConsoleCatalog.All.Select(c => c.Syntax), help.Rows.Select(row => row[0]));
        Assert.Equal($"PgProxy {ConsoleExecutor.Version}", Assert.Single(Assert.Single(version.Rows)));
        IReadOnlyList<string> instance = Assert.Single(instances.Rows);
        Assert.Equal("proxy", instances.Value(instance, "instance"));
        Assert.Equal($"127.0.0.1:{proxy.Port}", instances.Value(instance, "listen"));
        Assert.Equal($"{fixture.Server.Host}:{fixture.Server.Port}", instances.Value(instance, "upstream"));
        Assert.Equal(("disable", "prefer"), (instances.Value(instance, "listen_tls"), instances.Value(instance, "upstream_tls")));
        Assert.Equal("0", instances.Value(instance, "sessions"));
        Dictionary<string, string> keys = config.Rows.ToDictionary(row => row[0], row => row[1]);
        Assert.Equal(fixture.Server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), keys["instances[0].redirect.port"]);
        Assert.Equal($"{ConsoleSetup.User}, {ConsoleSetup.Md5User}", keys["admin.users"]);
        Assert.Equal(console.AuthFile, keys["admin.auth-file"]);
    }

    [Fact]
    public async Task Rules_and_plugins_answer_with_no_rows_yet_and_an_idle_proxy_has_stats_of_zero()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        PsqlTarget target = ConsoleSetup.Target(proxy);

        Assert.Empty((await ConsolePsql.QueryAsync(target, "SHOW RULES")).Rows);
        Assert.Empty((await ConsolePsql.QueryAsync(target, "SHOW PLUGINS")).Rows);
        Assert.Empty((await ConsolePsql.QueryAsync(target, "SHOW QUERIES ORDER BY calls LIMIT 10")).Rows);
        IReadOnlyList<string> stats = Assert.Single((await ConsolePsql.QueryAsync(target, "SHOW STATS")).Rows);
        Assert.Equal(["proxy", "0", "0", "0", "0", "0", string.Empty, "0", "0", "0", "0.000", "0.000", "0.000"], stats);

        ProcessResult reset = await Psql.RunAsync(target, "RESET STATS;\n");
        Assert.True(reset.Succeeded, reset.ToString());
        Assert.Equal("RESET", reset.StandardOutput.Trim());
    }

    [Fact]
    public async Task Several_commands_in_one_query_string_answer_in_turn()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));

        ProcessResult result = await Psql.RunAsync(ConsoleSetup.Target(proxy), string.Empty, new PsqlOptions { Arguments = ["-At", "-c", "SHOW VERSION; RESET STATS; SHOW VERSION"] });

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal($"PgProxy {ConsoleExecutor.Version}\nRESET\nPgProxy {ConsoleExecutor.Version}", result.StandardOutput.Trim());
    }

    [Fact]
    public async Task An_unknown_command_is_42601_with_the_list_of_commands_and_the_session_goes_on()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));

        ProcessResult result = await Psql.RunAsync(
            ConsoleSetup.Target(proxy),
            "\\set VERBOSITY verbose\nSELECT 1;\nSHOW VERSION;\n",
            new PsqlOptions { OnErrorStop = false, Arguments = ["-At"] });

        Assert.Contains("ERROR:  42601: unknown console command \"SELECT 1\"", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"HINT:  the console's commands are: {ConsoleCatalog.Summary}", result.StandardError, StringComparison.Ordinal);
        Assert.Equal($"PgProxy {ConsoleExecutor.Version}", result.StandardOutput.Trim());
    }

    [Fact]
    public async Task Kill_and_cancel_of_a_session_that_does_not_exist_are_42704()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));

        ProcessResult result = await Psql.RunAsync(
            ConsoleSetup.Target(proxy),
            "\\set VERBOSITY verbose\nKILL 999999;\nCANCEL 999999;\nKILL;\n",
            new PsqlOptions { OnErrorStop = false });

        Assert.Contains("ERROR:  42704: no session with id 999999", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(2, result.StandardError.Split("42704").Length - 1);
        Assert.Contains("ERROR:  42601: KILL takes one session id", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancel_of_a_console_session_is_55000_it_has_no_server_to_cancel_on()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));

        // \gset takes the one row (this session's own) into psql variables named by the columns.
        ProcessResult result = await Psql.RunAsync(
            ConsoleSetup.Target(proxy),
            "\\set VERBOSITY verbose\nSHOW SESSIONS \\gset\nCANCEL :id;\n",
            new PsqlOptions { OnErrorStop = false });

        Assert.Contains("ERROR:  55000: session ", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("has no server connection", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_console_session_that_kills_itself_gets_the_answer_then_57P01()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));

        ProcessResult result = await Psql.RunAsync(
            ConsoleSetup.Target(proxy),
            "SHOW SESSIONS \\gset\nKILL :id;\nSHOW VERSION;\n",
            new PsqlOptions { OnErrorStop = false });

        Assert.Contains("KILL", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("FATAL:  terminating connection due to administrator command", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("PgProxy ", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_console_session_lists_itself_as_active_with_database_pgproxy_and_no_server()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));

        ConsoleOutput dedicated = await ConsolePsql.QueryAsync(ConsoleSetup.Target(proxy), "SHOW SESSIONS");
        ConsoleOutput onInstance = await ConsolePsql.QueryAsync(ConsoleSetup.Target(proxy, dedicated: false), "SHOW SESSIONS");

        IReadOnlyList<string> self = Assert.Single(dedicated.Rows);
        Assert.Equal(("admin", ConsoleSetup.User, "pgproxy", "active"), (dedicated.Value(self, "instance"), dedicated.Value(self, "user"), dedicated.Value(self, "database"), dedicated.Value(self, "state")));
        Assert.Equal(("psql", "off", string.Empty), (dedicated.Value(self, "application_name"), dedicated.Value(self, "client_tls"), dedicated.Value(self, "server_tls")));
        Assert.Equal("proxy", onInstance.Value(Assert.Single(onInstance.Rows), "instance"));
    }
}
