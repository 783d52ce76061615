using System.Runtime.InteropServices;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>SIGHUP reloads plugins without dropping sessions; a reload that fails keeps the running configuration.</summary>
[Collection(SharedPostgres.Name)]
public sealed class ReloadTests(PostgresFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static string Plugin(string answer) => $$"""
        public static class Answer
        {
            public static string RewriteQuery(string query) => query.Replace("'question'", "'{{answer}}'");
        }
        """;

    private ConfigDirectory Config()
    {
        string yaml = ConfigDirectory.OneInstance(fixture.Server, "  plugin-dir: plugins")
            .Replace("settings:", "plugins:\n  - answer\nsettings:", StringComparison.Ordinal)
            + "\n    intercept:\n      commands:\n        queries:\n          - plugin: answer\n            function: rewrite_query\n";
        ConfigDirectory directory = ConfigDirectory.Create(yaml);
        Directory.CreateDirectory(Path.Combine(directory.Path, "plugins"));
        return directory;
    }

    private static async Task<string> AskAsync(RawPgClient client)
    {
        await client.SendAsync(RawPgClient.Query("SELECT 'question'"));
        RawMessage row = (await client.ReadUntilReadyAsync()).Single(m => m.Code == 'D');
        return System.Text.Encoding.UTF8.GetString(row.Body, 6, row.Body.Length - 6);
    }

    private static async Task<RawPgClient> SessionAsync(ProxyProcess proxy)
    {
        RawPgClient client = await RawPgClient.ConnectAsync("127.0.0.1", proxy.PortOf("proxy"));
        await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);
        return client;
    }

    private static async Task ReloadAsync(ProxyProcess proxy, string outcome, int occurrence)
    {
        await proxy.SignalAsync(PosixSignal.SIGHUP);
        await proxy.WaitForOutputAsync(
            output => CountOf(output, outcome) >= occurrence,
            Deadline,
            $"pgproxy logs \"{outcome}\"");
        Assert.False(proxy.HasExited, proxy.Output);
    }

    private static int CountOf(string text, string what) => (text.Length - text.Replace(what, string.Empty, StringComparison.Ordinal).Length) / what.Length;

    [Fact]
    public async Task A_changed_plugin_serves_new_sessions_while_open_sessions_keep_theirs()
    {
        using ConfigDirectory directory = Config();
        string source = Path.Combine(directory.Path, "plugins", "answer.cs");
        await File.WriteAllTextAsync(source, Plugin("first"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using RawPgClient before = await SessionAsync(proxy);

        await File.WriteAllTextAsync(source, Plugin("second"));
        await ReloadAsync(proxy, "Configuration reloaded", 1);
        await using RawPgClient after = await SessionAsync(proxy);

        Assert.Equal("first", await AskAsync(before));
        Assert.Equal("second", await AskAsync(after));
    }

    [Fact]
    public async Task A_reload_that_fails_keeps_the_running_plugins_and_says_why()
    {
        using ConfigDirectory directory = Config();
        string source = Path.Combine(directory.Path, "plugins", "answer.cs");
        await File.WriteAllTextAsync(source, Plugin("first"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);

        await File.WriteAllTextAsync(source, "public static class Answer { this does not compile }");
        await ReloadAsync(proxy, "Reload failed", 1);
        await using RawPgClient session = await SessionAsync(proxy);

        Assert.Equal("first", await AskAsync(session));
        Assert.Contains("answer.cs(1,", proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_reload_with_an_invalid_configuration_keeps_the_running_one()
    {
        using ConfigDirectory directory = Config();
        await File.WriteAllTextAsync(Path.Combine(directory.Path, "plugins", "answer.cs"), Plugin("first"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);

        await File.AppendAllTextAsync(directory.ConfigFile, "unknown-key: 1\n");
        await ReloadAsync(proxy, "Reload failed", 1);
        await using RawPgClient session = await SessionAsync(proxy);

        Assert.Equal("first", await AskAsync(session));
        Assert.Contains("unknown-key", proxy.Output, StringComparison.Ordinal);
    }
}
