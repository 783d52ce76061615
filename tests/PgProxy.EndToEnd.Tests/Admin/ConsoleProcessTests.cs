using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.EndToEnd.Tests.Relay;

namespace PgProxy.EndToEnd.Tests.Admin;

/// <summary>
/// The console in the real pgproxy process, for what only a process shows: RELOAD reads the file again as SIGHUP does,
/// SHUTDOWN ends the process, and without an admin section database pgproxy is relayed like any other.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class ConsoleProcessTests(PostgresFixture fixture) : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private readonly ConsoleSetup console = ConsoleSetup.Create();

    public void Dispose() => console.Dispose();

    private ConfigDirectory Directory(bool admin = true) => ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server) + (admin ? $"""

        admin:
          listen: {"{"}host: 127.0.0.1, port: 0{"}"}
          users: [{ConsoleSetup.User}]
          auth-file: {console.AuthFile}
        """ : string.Empty));

    private static PsqlTarget Console(ProxyProcess proxy) => new("127.0.0.1", proxy.ConsolePort, ConsoleSetup.User, "pgproxy", ConsoleSetup.Password);

    [Fact]
    public async Task Reload_reports_each_error_of_a_broken_file_with_its_line_and_keeps_running_then_applies_the_fixed_one()
    {
        using ConfigDirectory directory = Directory();
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, console: true);
        string good = await File.ReadAllTextAsync(directory.ConfigFile);

        await File.WriteAllTextAsync(directory.ConfigFile, good.Replace("log-level: info", "log-level: loud\n  shutdown_timeout: 5s", StringComparison.Ordinal));
        ProcessResult broken = await Psql.RunAsync(Console(proxy), "\\set VERBOSITY verbose\nRELOAD;\n");

        Assert.Equal(3, broken.ExitCode);
        Assert.Contains("ERROR:  F0000: reload failed; the running configuration (generation 1) stays:", broken.StandardError, StringComparison.Ordinal);
        Assert.Contains($"{directory.ConfigFile}:2:14: settings.log-level: expected one of", broken.StandardError, StringComparison.Ordinal);
        Assert.Contains($"{directory.ConfigFile}:3:3: settings.shutdown_timeout: unknown key 'shutdown_timeout'; keys are hyphenated", broken.StandardError, StringComparison.Ordinal);
        Assert.False(proxy.HasExited);

        await File.WriteAllTextAsync(directory.ConfigFile, good.Replace("log-level: info", "log-level: debug", StringComparison.Ordinal));
        ProcessResult fixedUp = await Psql.RunAsync(Console(proxy), "RELOAD;\n");

        Assert.True(fixedUp.Succeeded, fixedUp.ToString());
        Assert.Equal("RELOAD", fixedUp.StandardOutput.Trim());
        await proxy.WaitForOutputAsync(output => output.Contains("Configuration reloaded (generation 2)", StringComparison.Ordinal), Deadline, "the reload applies");
        ConsoleOutput config = await ConsolePsql.QueryAsync(Console(proxy), "SHOW CONFIG");
        Assert.Equal("debug", config.Rows.Single(row => row[0] == "settings.log-level")[1]);
    }

    [Fact]
    public async Task Shutdown_safe_lets_a_transaction_finish_then_ends_its_session_with_57P01_and_the_process_exits_0()
    {
        using ConfigDirectory directory = Directory();
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, console: true);
        string name = Backends.UniqueApplicationName("safe");
        await using RawPgClient client = await SessionAsync(proxy, name);
        await QueryAsync(client, "BEGIN");

        ProcessResult shutdown = await Psql.RunAsync(Console(proxy), "SHUTDOWN SAFE;\n");

        Assert.True(shutdown.Succeeded, shutdown.ToString());
        Assert.Equal("SHUTDOWN", shutdown.StandardOutput.Trim());
        await proxy.WaitForOutputAsync(output => output.Contains("Shutting down: ", StringComparison.Ordinal), Deadline, "the stop begins");
        Assert.False(proxy.HasExited, "a session in a transaction holds the safe shutdown");
        await client.SendAsync(RawPgClient.Query("SELECT 'inside'"));
        List<RawMessage> inside = await client.ReadUntilReadyAsync();
        Assert.Equal("TDCZ", string.Concat(inside.Select(m => m.Code)));
        await client.SendAsync(RawPgClient.Query("COMMIT"));
        List<RawMessage> commit = [await client.ReadMessageAsync(), await client.ReadMessageAsync(), await client.ReadMessageAsync()];
        Assert.Equal("CZE", string.Concat(commit.Select(m => m.Code)));
        Assert.Equal("57P01", commit[2].SqlState);
        Assert.Equal(0, await proxy.WaitForExitAsync(Deadline));
        Assert.Contains("Shutdown requested from the admin console (safe", proxy.Output, StringComparison.Ordinal);
        await Backends.WaitUntilGoneAsync(fixture.Server, name);
    }

    [Fact]
    public async Task Shutdown_ends_a_session_in_a_transaction_at_once_with_57P01_and_the_process_exits_0()
    {
        using ConfigDirectory directory = Directory();
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, console: true);
        string name = Backends.UniqueApplicationName("now");
        await using RawPgClient client = await SessionAsync(proxy, name);
        await QueryAsync(client, "BEGIN");

        ProcessResult shutdown = await Psql.RunAsync(Console(proxy), "shutdown\n");

        Assert.True(shutdown.Succeeded, shutdown.ToString());
        RawMessage message = await client.ReadMessageAsync();
        Assert.Equal(('E', "57P01"), (message.Code, message.SqlState));
        Assert.True(await client.IsClosedByPeerAsync(), "the proxy closes the connection after 57P01");
        Assert.Equal(0, await proxy.WaitForExitAsync(Deadline));
        Assert.Contains("PgProxy stopped", proxy.Output, StringComparison.Ordinal);
        await Backends.WaitUntilGoneAsync(fixture.Server, name);
    }

    [Fact]
    public async Task Without_an_admin_section_database_pgproxy_is_relayed_to_the_server_as_before()
    {
        using ConfigDirectory directory = Directory(admin: false);
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);

        ProcessResult result = await Psql.RunAsync(new PsqlTarget("127.0.0.1", proxy.PortOf("proxy"), PostgresServer.TrustUser, "pgproxy"), "SHOW HELP;\n");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("FATAL:  database \"pgproxy\" does not exist", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Show_plugins_counts_the_calls_and_failures_of_a_query_plugin_on_live_traffic()
    {
        string yaml = ConfigDirectory.OneInstance(fixture.Server, "  plugin-dir: plugins")
            .Replace("settings:", "plugins:\n  - fragile\nsettings:", StringComparison.Ordinal)
            + "\n    intercept:\n      commands:\n        queries:\n          - plugin: fragile\n            function: rewrite_query\n"
            + $"admin:\n  users: [{ConsoleSetup.User}]\n  auth-file: {console.AuthFile}\n";
        using ConfigDirectory directory = ConfigDirectory.Create(yaml);
        System.IO.Directory.CreateDirectory(Path.Combine(directory.Path, "plugins"));
        string source = Path.Combine(directory.Path, "plugins", "fragile.cs");
        await File.WriteAllTextAsync(source, """
            public static class Fragile
            {
                public static string RewriteQuery(string query) =>
                    query.Contains("'boom'", System.StringComparison.Ordinal) ? throw new System.InvalidOperationException("boom") : query;
            }
            """);
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using RawPgClient client = await SessionAsync(proxy, Backends.UniqueApplicationName("plugins"));

        for (int i = 0; i < 3; i++)
        {
            await QueryAsync(client, "SELECT 1");
        }

        await QueryAsync(client, "SELECT 'boom'"); // the plugin throws; on-error pass lets the query through

        ConsoleOutput plugins = await ConsolePsql.QueryAsync(new PsqlTarget("127.0.0.1", proxy.PortOf("proxy"), ConsoleSetup.User, "pgproxy", ConsoleSetup.Password), "SHOW PLUGINS");
        IReadOnlyList<string> row = Assert.Single(plugins.Rows);
        Assert.Equal(("fragile", "source file", source), (plugins.Value(row, "plugin"), plugins.Value(row, "kind"), plugins.Value(row, "path")));
        Assert.Equal(("4", "1", "0"), (plugins.Value(row, "calls"), plugins.Value(row, "failures"), plugins.Value(row, "timeouts")));
        Assert.True(double.Parse(plugins.Value(row, "mean_us"), System.Globalization.CultureInfo.InvariantCulture) > 0, plugins.Value(row, "mean_us"));
    }

    private static async Task<RawPgClient> SessionAsync(ProxyProcess proxy, string applicationName)
    {
        RawPgClient client = await RawPgClient.ConnectAsync("127.0.0.1", proxy.PortOf("proxy"));
        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database), ("application_name", applicationName)));
        Assert.Equal('Z', (await client.ReadUntilReadyAsync())[^1].Code);
        return client;
    }

    private static async Task QueryAsync(RawPgClient client, string sql)
    {
        await client.SendAsync(RawPgClient.Query(sql));
        Assert.DoesNotContain(await client.ReadUntilReadyAsync(), m => m.Code == 'E');
    }
}
