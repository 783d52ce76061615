using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Packaging;

/// <summary>
/// The .deb that scripts/package.sh builds, installed into this machine with apt as an operator would (CI runs as root
/// on Debian): its files, user and unit; its configuration checked; its binary run as the pgproxy user in front of
/// the test server; and its removal, which keeps the configuration.
/// </summary>
[Collection(SharedPackage.Name)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class DebianPackageTests(PackageFixture package, PostgresFixture postgres)
{
    private const string Binary = "/usr/bin/pgproxy";
    private const string ConfigFile = "/etc/pgproxy/pgproxy.yml";
    private const string Unit = "/lib/systemd/system/pgproxy.service";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(2);

    [DebianRootFact]
    public async Task Installs_the_binary_the_configuration_as_a_conffile_the_folders_the_user_and_the_unit()
    {
        await package.EnsureInstalledAsync();

        Assert.True(File.Exists(Binary), $"{Binary} is installed");
        Assert.True(File.Exists("/usr/lib/pgproxy/plugins/tableau_hll/tableau_hll.dll"), "the built-in plugin beside the binary");
        // A folder, not a self-extracting single file: the service unpacks nothing, and an upgrade can hand over.
        Assert.True(File.Exists("/usr/lib/pgproxy/PgProxy.Core.dll"), "the assemblies beside the binary");
        Assert.True(File.Exists("/usr/lib/pgproxy/System.Private.CoreLib.dll"), "the runtime beside the binary (self-contained)");
        ProcessResult user = await RunAsync("getent", "passwd", "pgproxy");
        Assert.True(user.Succeeded, $"a pgproxy user: {user}");
        Assert.EndsWith(":/usr/sbin/nologin", user.StandardOutput.Trim(), StringComparison.Ordinal);
        foreach (string folder in new[] { "/var/log/pgproxy", "/var/cache/pgproxy" })
        {
            ProcessResult owner = await RunAsync("stat", "-c", "%U:%G %a", folder);
            Assert.Equal("pgproxy:pgproxy 750", owner.StandardOutput.Trim());
        }

        ProcessResult conffiles = await RunAsync("dpkg-query", "-W", "-f=${Conffiles}", "pgproxy");
        Assert.Contains(ConfigFile, conffiles.StandardOutput, StringComparison.Ordinal);
        ProcessResult depends = await RunAsync("dpkg-query", "-W", "-f=${Depends}", "pgproxy");
        Assert.Contains("libssl3", depends.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("libpg-query1504.0", depends.StandardOutput, StringComparison.Ordinal);

        string unit = await File.ReadAllTextAsync(Unit);
        foreach (string line in new[]
        {
            "Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=pgproxy", "ProtectSystem=strict", "NoNewPrivileges=yes",
            "CapabilityBoundingSet=\n", "ReadWritePaths=/var/log/pgproxy /var/cache/pgproxy",
        })
        {
            Assert.Contains(line, unit, StringComparison.Ordinal);
        }

        Assert.Matches(@"(?m)^WatchdogSec=\d+s$", unit);
        Assert.DoesNotContain("DOTNET_BUNDLE_EXTRACT_BASE_DIR", unit, StringComparison.Ordinal);
    }

    [DebianRootFact]
    public async Task The_unit_passes_systemd_analyze_verify()
    {
        await package.EnsureInstalledAsync();
        Assert.True(File.Exists("/usr/bin/systemd-analyze"), "systemd-analyze is missing: scripts/test.sh installs Debian's systemd package for this test");

        ProcessResult verify = await RunAsync("systemd-analyze", "verify", Unit);

        Assert.True(verify.Succeeded, verify.ToString());
        // verify exits 0 on warnings too: a unit it has something to say about is not a clean unit.
        Assert.DoesNotContain("pgproxy.service", verify.StandardError, StringComparison.Ordinal);
    }

    [DebianRootFact]
    public async Task The_packaged_configuration_passes_check()
    {
        await package.EnsureInstalledAsync();

        ProcessResult check = await RunInstalledAsync(["check", "--config", ConfigFile]);

        Assert.True(check.Succeeded, check.ToString());
        Assert.Contains($"{ConfigFile}: configuration is valid", check.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("listen 127.0.0.1:6432", check.StandardOutput, StringComparison.Ordinal);
    }

    [DebianRootFact]
    public async Task The_installed_binary_runs_as_the_pgproxy_user_with_its_built_in_plugin_and_relays_a_query()
    {
        await package.EnsureInstalledAsync();
        string folder = Path.Combine(Path.GetTempPath(), "pgproxy-deb-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(folder);
        string log = $"/var/log/pgproxy/test-{Guid.NewGuid():N}.log";
        try
        {
            // Readable by the pgproxy user, as /etc/pgproxy is; the log goes where the unit lets the service write.
            File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            string config = Path.Combine(folder, "pgproxy.yml");
            await File.WriteAllTextAsync(config, string.Create(CultureInfo.InvariantCulture, $"""
                plugins:
                  - tableau_hll
                settings:
                  log-level: info
                  general-log: {log}
                instances:
                  - listen:
                      name: proxy
                      host: 127.0.0.1
                      port: 0
                    redirect:
                      name: postgresql
                      host: {postgres.Server.Host}
                      port: {postgres.Server.Port}
                    intercept:
                      commands:
                        queries:
                          - plugin: tableau_hll
                            function: rewrite_query
                """));
            File.SetUnixFileMode(config, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

            // setpriv execs the binary itself: the process started is the proxy, as the pgproxy user, as the unit runs it.
            var startInfo = new ProcessStartInfo("setpriv") { WorkingDirectory = "/var/cache/pgproxy" };
            foreach (string argument in new[] { "--reuid=pgproxy", "--regid=pgproxy", "--init-groups", "--", Binary, "--config", config })
            {
                startInfo.ArgumentList.Add(argument);
            }

            startInfo.Environment["HOME"] = "/nonexistent";
            await using ProxyProcess proxy = await ProxyProcess.StartAsync(startInfo, instances: 1);

            ProcessResult uid = await RunAsync("id", "-u", "pgproxy");
            Assert.StartsWith($"{uid.StandardOutput.Trim()}\t", proxy.StatusField("Uid"), StringComparison.Ordinal);
            Assert.Contains("Plugin tableau_hll loaded (Assembly) from /usr/lib/pgproxy/plugins/tableau_hll/tableau_hll.dll", proxy.Output, StringComparison.Ordinal);
            await using (var connection = new NpgsqlConnection(proxy.NpgsqlConnectionString("deb-test")))
            {
                await connection.OpenAsync();
                await using var command = new NpgsqlCommand("SELECT current_user", connection);
                Assert.Equal(PostgresServer.TrustUser, await command.ExecuteScalarAsync());
            }

            await proxy.SignalAsync(PosixSignal.SIGTERM);
            Assert.Equal(0, await proxy.WaitForExitAsync(TimeSpan.FromSeconds(20)));
            ProcessResult owner = await RunAsync("stat", "-c", "%U", log);
            Assert.Equal("pgproxy", owner.StandardOutput.Trim());
            Assert.Contains("Session", await File.ReadAllTextAsync(log), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
            File.Delete(log);
        }
    }

    [DebianRootFact]
    public async Task Remove_keeps_the_configuration_and_removes_the_binary_and_a_reinstall_keeps_the_edited_configuration()
    {
        await package.EnsureInstalledAsync();
        string original = await File.ReadAllTextAsync(ConfigFile);
        string edited = original + "\n# edited by the operator\n";
        await File.WriteAllTextAsync(ConfigFile, edited);
        try
        {
            ProcessResult removed = await package.RemoveAsync();
            Assert.True(removed.Succeeded, removed.ToString());

            Assert.False(File.Exists(Binary), $"{Binary} is gone");
            Assert.False(File.Exists("/usr/lib/pgproxy/pgproxy"), "the binary is gone");
            Assert.False(File.Exists(Unit), "the unit is gone");
            Assert.Equal(edited, await File.ReadAllTextAsync(ConfigFile));
            ProcessResult status = await RunAsync("dpkg-query", "-W", "-f=${db:Status-Status}", "pgproxy");
            Assert.Equal("config-files", status.StandardOutput.Trim());

            // An upgrade or a reinstall leaves a conffile the operator changed as it is.
            await package.EnsureInstalledAsync();
            Assert.True(File.Exists(Binary), $"{Binary} is back");
            Assert.Equal(edited, await File.ReadAllTextAsync(ConfigFile));
        }
        finally
        {
            await package.EnsureInstalledAsync();
            await File.WriteAllTextAsync(ConfigFile, original);
        }
    }

    /// <summary>The installed binary, as root.</summary>
    private static Task<ProcessResult> RunInstalledAsync(string[] arguments) => ProcessRunner.RunAsync(Binary, arguments, CommandTimeout);

    private static Task<ProcessResult> RunAsync(string command, params string[] arguments) => ProcessRunner.RunAsync(command, arguments, CommandTimeout);
}
