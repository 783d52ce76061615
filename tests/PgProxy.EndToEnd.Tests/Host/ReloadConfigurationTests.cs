using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>
/// SIGHUP applies everything in the file: upstreams, instances added and removed, listen addresses, the log level.
/// New sessions get the new configuration; open sessions keep theirs until they end. A reload with an error keeps all.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class ReloadConfigurationTests(PostgresFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static string Instance(string name, PostgresServer upstream, int port = 0) =>
        string.Create(CultureInfo.InvariantCulture, $"""
              - listen:
                  name: {name}
                  host: 127.0.0.1
                  port: {port}
                redirect:
                  name: postgresql
                  host: {upstream.Host}
                  port: {upstream.Port}

            """);

    private static string Config(string logLevel, params string[] instances) =>
        $"settings:\n  log-level: {logLevel}\ninstances:\n{string.Concat(instances)}";

    private static async Task<RawPgClient> SessionAsync(int port)
    {
        RawPgClient client = await RawPgClient.ConnectAsync("127.0.0.1", port);
        await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);
        return client;
    }

    /// <summary>The port of the PostgreSQL server the session is relayed to.</summary>
    private static async Task<int> ServerPortAsync(RawPgClient client)
    {
        await client.SendAsync(RawPgClient.Query("SELECT current_setting('port')"));
        RawMessage row = (await client.ReadUntilReadyAsync()).Single(m => m.Code == 'D');
        return int.Parse(System.Text.Encoding.UTF8.GetString(row.Body, 6, row.Body.Length - 6), CultureInfo.InvariantCulture);
    }

    private static async Task ReloadAsync(ProxyProcess proxy, string outcome)
    {
        int before = CountOf(proxy.Output, outcome);
        await proxy.SignalAsync(PosixSignal.SIGHUP);
        await proxy.WaitForOutputAsync(output => CountOf(output, outcome) > before, Deadline, $"pgproxy logs \"{outcome}\"");
        Assert.False(proxy.HasExited, proxy.Output);
    }

    private static int CountOf(string text, string what) => (text.Length - text.Replace(what, string.Empty, StringComparison.Ordinal).Length) / what.Length;

    private static async Task AssertRefusedAsync(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var refused = await Assert.ThrowsAsync<SocketException>(() => socket.ConnectAsync(IPAddress.Loopback, port));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    /// <summary>A port free now: the system's choice for a socket closed again at once.</summary>
    private static int FreePort()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)listener.LocalEndPoint!).Port;
    }

    [Fact]
    public async Task A_changed_upstream_serves_new_sessions_while_an_open_session_keeps_the_old_server()
    {
        await using PostgresServer second = await PostgresServer.StartNewAsync();
        using ConfigDirectory directory = ConfigDirectory.Create(Config("info", Instance("proxy", fixture.Server)));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        int port = proxy.PortOf("proxy");
        await using RawPgClient before = await SessionAsync(port);

        await File.WriteAllTextAsync(directory.ConfigFile, Config("info", Instance("proxy", second)));
        await ReloadAsync(proxy, "Configuration reloaded");
        await using RawPgClient after = await SessionAsync(port);

        Assert.Equal(port, proxy.PortOf("proxy"));
        Assert.Equal(fixture.Server.Port, await ServerPortAsync(before));
        Assert.Equal(second.Port, await ServerPortAsync(after));
        Assert.Contains($"at {second.Host}:{second.Port} instead of", proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_added_instance_listens_after_the_reload()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Config("info", Instance("proxy", fixture.Server)));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);

        await File.WriteAllTextAsync(directory.ConfigFile, Config("info", Instance("proxy", fixture.Server), Instance("extra", fixture.Server)));
        await ReloadAsync(proxy, "Configuration reloaded");
        await using RawPgClient session = await SessionAsync(proxy.PortOf("extra"));

        Assert.Equal(fixture.Server.Port, await ServerPortAsync(session));
        Assert.Contains("Instance extra listening on", proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_removed_instance_stops_accepting_while_its_open_session_works_until_it_ends()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Config("info", Instance("proxy", fixture.Server), Instance("extra", fixture.Server)));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 2);
        int extraPort = proxy.PortOf("extra");
        RawPgClient open = await SessionAsync(extraPort);

        await File.WriteAllTextAsync(directory.ConfigFile, Config("info", Instance("proxy", fixture.Server)));
        await ReloadAsync(proxy, "Configuration reloaded");

        Assert.Contains("Instance extra stopped listening", proxy.Output, StringComparison.Ordinal);
        await AssertRefusedAsync(extraPort);
        Assert.Equal(fixture.Server.Port, await ServerPortAsync(open));
        await open.SendAsync(RawPgClient.Message('X', []));
        await open.DisposeAsync();
        await proxy.WaitForOutputAsync(
            output => output.Contains("bytes to client (client terminated)", StringComparison.Ordinal),
            Deadline,
            "the removed instance's session ends when its client leaves");
        await using RawPgClient kept = await SessionAsync(proxy.PortOf("proxy"));
        Assert.Equal(fixture.Server.Port, await ServerPortAsync(kept));
    }

    [Fact]
    public async Task A_changed_listen_address_opens_the_new_one_and_closes_the_old_one_while_its_session_goes_on()
    {
        int oldPort = FreePort();
        int newPort = FreePort();
        using ConfigDirectory directory = ConfigDirectory.Create(Config("info", Instance("proxy", fixture.Server, oldPort)));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using RawPgClient before = await SessionAsync(oldPort);

        await File.WriteAllTextAsync(directory.ConfigFile, Config("info", Instance("proxy", fixture.Server, newPort)));
        await ReloadAsync(proxy, "Configuration reloaded");
        await using RawPgClient after = await SessionAsync(newPort);

        Assert.Equal(newPort, proxy.PortOf("proxy"));
        await AssertRefusedAsync(oldPort);
        Assert.Equal(fixture.Server.Port, await ServerPortAsync(before));
        Assert.Equal(fixture.Server.Port, await ServerPortAsync(after));
    }

    [Fact]
    public async Task A_lower_log_level_logs_debug_lines_after_the_reload()
    {
        const string DebugLine = "upstream postgresql connection is";
        using ConfigDirectory directory = ConfigDirectory.Create(Config("info", Instance("proxy", fixture.Server)));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using (RawPgClient atInfo = await SessionAsync(proxy.PortOf("proxy")))
        {
            await ServerPortAsync(atInfo);
        }

        await File.WriteAllTextAsync(directory.ConfigFile, Config("debug", Instance("proxy", fixture.Server)));
        await ReloadAsync(proxy, "Configuration reloaded");
        Assert.DoesNotContain(DebugLine, proxy.Output, StringComparison.Ordinal);
        await using RawPgClient atDebug = await SessionAsync(proxy.PortOf("proxy"));

        await proxy.WaitForOutputAsync(output => output.Contains(DebugLine, StringComparison.Ordinal), Deadline, "pgproxy logs a debug line");
        Assert.False(proxy.HasExited, proxy.Output);
    }

    [Fact]
    public async Task A_reload_with_an_error_keeps_everything_and_names_the_key_and_line()
    {
        await using PostgresServer second = await PostgresServer.StartNewAsync();
        using ConfigDirectory directory = ConfigDirectory.Create(Config("info", Instance("proxy", fixture.Server)));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        int port = proxy.PortOf("proxy");

        // The upstream moves and an instance is added, but one key is wrong: none of it may apply.
        string broken = Config("debug", Instance("proxy", second), Instance("extra", second))
            .Replace("log-level: debug", "log-level: debug\n  shutdown-timeout: soon", StringComparison.Ordinal);
        await File.WriteAllTextAsync(directory.ConfigFile, broken);
        await ReloadAsync(proxy, "Reload failed");
        await using RawPgClient session = await SessionAsync(port);

        int line = Array.FindIndex(broken.Split('\n'), l => l.Contains("shutdown-timeout", StringComparison.Ordinal)) + 1;
        Assert.Contains($"{directory.ConfigFile}:{line}:", proxy.Output, StringComparison.Ordinal);
        Assert.Contains("settings.shutdown-timeout", proxy.Output, StringComparison.Ordinal);
        Assert.Equal(fixture.Server.Port, await ServerPortAsync(session));
        Assert.DoesNotContain("Instance extra listening", proxy.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("[DBG]", proxy.Output, StringComparison.Ordinal);
    }
}
