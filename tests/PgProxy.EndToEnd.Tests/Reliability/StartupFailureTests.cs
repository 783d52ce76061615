using System.Globalization;
using System.Net;
using System.Net.Sockets;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>
/// Start-up failures as a new user meets them, with the real pgproxy process: each ends with one line naming the
/// instance, the address or file and the system's reason, and the exit code docs/operations.md documents; never a
/// stack trace, and never a shutdown that did not begin.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // file modes, signals and setpriv are Unix's
public sealed class StartupFailureTests
{
    private const int ListenFailure = 2;
    private const int FileFailure = 3;
    private const int PluginFailure = 4;

    [Fact]
    public async Task A_port_in_use_exits_2_with_one_line_naming_instance_address_and_reason()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        int port = ((IPEndPoint)taken.LocalEndPoint!).Port;
        using ConfigDirectory directory = ConfigDirectory.Create(Config("127.0.0.1", port));

        (int exitCode, string output) = await PgProxyRun.RunToExitAsync(directory.ConfigFile);

        Assert.True(exitCode == ListenFailure, $"exit code {exitCode}:\n{output}");
        AssertOneCleanFailureLine(output, $"instance \"proxy\" cannot listen on 127.0.0.1:{port}: Address already in use");
    }

    [Fact]
    public async Task An_address_not_on_this_host_exits_2_with_the_system_reason()
    {
        // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this host.
        using ConfigDirectory directory = ConfigDirectory.Create(Config("192.0.2.1", 6432));

        (int exitCode, string output) = await PgProxyRun.RunToExitAsync(directory.ConfigFile);

        Assert.True(exitCode == ListenFailure, $"exit code {exitCode}:\n{output}");
        AssertOneCleanFailureLine(output, "instance \"proxy\" cannot listen on 192.0.2.1:6432: Cannot assign requested address");
    }

    [PrivilegedPortFact]
    public async Task A_privileged_port_as_an_unprivileged_user_exits_2_with_permission_denied()
    {
        int port = PrivilegedPortFactAttribute.FirstUnprivilegedPort - 1;
        using ConfigDirectory directory = ConfigDirectory.Create(Config("127.0.0.1", port));

        (int exitCode, string output) = await PgProxyRun.RunToExitAsync(directory.ConfigFile, asUser: PgProxyRun.Nobody);

        Assert.True(exitCode == ListenFailure, $"exit code {exitCode}:\n{output}");
        AssertOneCleanFailureLine(output, $"instance \"proxy\" cannot listen on 127.0.0.1:{port}: Permission denied");
    }

    [Fact]
    public async Task An_unreadable_certificate_exits_3_naming_instance_key_and_file()
    {
        using var certificates = TestCertificates.Create();
        using ConfigDirectory directory = ConfigDirectory.Create("");
        string certFile = Path.Combine(directory.Path, "server.crt");
        string keyFile = Path.Combine(directory.Path, "server.key");
        File.Copy(certificates.ServerCertFile, certFile);
        File.Copy(certificates.ServerKeyFile, keyFile);
        File.SetUnixFileMode(certFile, UnixFileMode.None);
        int? user = null;
        if (PgProxyRun.IsRoot)
        {
            // Root reads any file: run as nobody, who owns the key (so its 0600 is right) but cannot read the certificate.
            user = PgProxyRun.Nobody;
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Chown(keyFile, PgProxyRun.Nobody);
        }

        File.WriteAllText(directory.ConfigFile, Config("127.0.0.1", 0, $"      tls: {{mode: require, cert-file: {certFile}, key-file: {keyFile}}}\n"));

        (int exitCode, string output) = await PgProxyRun.RunToExitAsync(directory.ConfigFile, asUser: user);

        Assert.True(exitCode == FileFailure, $"exit code {exitCode}:\n{output}");
        AssertOneCleanFailureLine(output, $"instance \"proxy\": listen.tls.cert-file {certFile}: the file cannot be read (permission denied");
    }

    [Fact]
    public async Task A_missing_plugin_exits_4_naming_the_plugin_and_its_line()
    {
        using ConfigDirectory directory = ConfigDirectory.Create("plugins: [no_such_plugin]\n" + Config("127.0.0.1", 0, instanceExtra: """
                intercept:
                  commands:
                    queries: [{plugin: no_such_plugin, function: rewrite_query}]

            """));

        (int exitCode, string output) = await PgProxyRun.RunToExitAsync(directory.ConfigFile);

        Assert.True(exitCode == PluginFailure, $"exit code {exitCode}:\n{output}");
        AssertOneCleanFailureLine(output, "plugin \"no_such_plugin\" (config line 1) not found");
    }

    [Fact]
    public async Task A_log_file_that_cannot_be_created_exits_3_with_one_line()
    {
        using ConfigDirectory directory = ConfigDirectory.Create("settings:\n  general-log: /proc/no-such-dir/general.log\n" + Config("127.0.0.1", 0));

        (int exitCode, string output) = await PgProxyRun.RunToExitAsync(directory.ConfigFile);

        Assert.True(exitCode == FileFailure, $"exit code {exitCode}:\n{output}");
        Assert.Contains("pgproxy: cannot start: a log file", output, StringComparison.Ordinal);
        Assert.Contains("/proc/no-such-dir", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SIGTERM_while_plugins_compile_exits_143_and_never_listens()
    {
        using ConfigDirectory directory = ConfigDirectory.Create("plugins: [block_ddl]\n" + Config("127.0.0.1", 0, instanceExtra: """
                intercept:
                  commands:
                    queries: [{plugin: block_ddl, function: block_ddl}]

            """));
        Directory.CreateDirectory(Path.Combine(directory.Path, "plugins"));
        File.Copy(Path.Combine(PgProxy.TestSupport.RepositoryRoot.Path, "plugins", "examples", "block_ddl.cs"), Path.Combine(directory.Path, "plugins", "block_ddl.cs"));
        await using PgProxyRun run = PgProxyRun.Start(directory.ConfigFile);

        // Logged once the signal handlers are in place, before the plugin is compiled (seconds, with Roslyn).
        await run.WaitForOutputAsync(output => output.Contains(" starting 1 instance(s)", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "pgproxy to begin its start-up");
        Assert.False(run.HasExited, run.Output);
        await run.SignalAsync("TERM");
        int exitCode = await run.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exitCode == 143, $"exit code {exitCode}:\n{run.Output}");
        Assert.Contains("SIGTERM received during start-up: stopped before any instance started", run.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("listening on", run.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Output, StringComparison.Ordinal);
    }

    private static void AssertOneCleanFailureLine(string output, string expected)
    {
        string[] failures = [.. output.Split('\n').Where(line => line.Contains("[FTL]", StringComparison.Ordinal))];
        Assert.True(failures.Length == 1, $"expected one FATAL line:\n{output}");
        Assert.Contains("Cannot start: " + expected, failures[0], StringComparison.Ordinal);
        Assert.DoesNotContain("ObjectDisposedException", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Shutting down", output, StringComparison.Ordinal);
    }

    private static void Chown(string path, int uid)
    {
        ProcessResult result = ProcessRunner.RunAsync("chown", [$"{uid}:{uid}", path], TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
        Assert.True(result.Succeeded, result.ToString());
    }

    private static string Config(string host, int port, string listenExtra = "", string instanceExtra = "") =>
        string.Create(CultureInfo.InvariantCulture, $"""
            instances:
              - listen:
                  name: proxy
                  host: {host}
                  port: {port}
            {listenExtra}    redirect:
                  name: postgresql
                  host: 127.0.0.1
                  port: 5432
            {instanceExtra}
            """);
}
