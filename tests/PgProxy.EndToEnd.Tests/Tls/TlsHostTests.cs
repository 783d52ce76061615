using System.Globalization;
using System.Runtime.InteropServices;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Tls;

/// <summary>The pgproxy command with TLS: bad files named by check and at start-up, certificates renewed on SIGHUP.</summary>
[Collection(TlsPostgres.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // key file modes are Unix's
public sealed class TlsHostTests(TlsPostgresFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private string Yaml(string certFile, string keyFile) => string.Create(CultureInfo.InvariantCulture, $"""
        settings:
          log-level: info
        instances:
          - listen:
              name: proxy
              host: 127.0.0.1
              port: 0
              tls:
                mode: require
                cert-file: {certFile}
                key-file: {keyFile}
            redirect:
              name: postgresql
              host: {fixture.Server.Host}
              port: {fixture.Server.Port}
              tls:
                mode: verify-full
                ca-file: {fixture.Certificates.CaFile}
        """);

    [Fact]
    public async Task Check_and_start_up_name_a_certificate_file_that_does_not_exist()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Yaml("missing.crt", fixture.Certificates.ServerKeyFile));
        string missing = Path.Combine(directory.Path, "missing.crt");

        ProcessResult check = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);
        ProcessResult run = await ProxyProcess.RunToEndAsync("--config", directory.ConfigFile);

        Assert.Equal(1, check.ExitCode);
        Assert.Contains($"instance \"proxy\": listen.tls.cert-file {missing}: the file does not exist", check.StandardError, StringComparison.Ordinal);
        Assert.Equal(3, run.ExitCode); // a file the configuration names cannot be used (docs/operations.md, Exit codes)
        Assert.Contains($"listen.tls.cert-file {missing}: the file does not exist", run.StandardOutput + run.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_and_start_up_refuse_a_private_key_that_others_can_read_in_one_line()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Yaml(fixture.Certificates.ServerCertFile, "server.key"));
        string keyFile = Path.Combine(directory.Path, "server.key");
        File.Copy(fixture.Certificates.ServerKeyFile, keyFile);
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        string expected = $"listen.tls.key-file {keyFile}: permissions 0644 are too open for a private key; it needs 0600 or less";

        ProcessResult check = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);
        ProcessResult run = await ProxyProcess.RunToEndAsync("--config", directory.ConfigFile);

        Assert.Equal(1, check.ExitCode);
        Assert.Single(check.StandardError.Split('\n'), line => line.Contains(expected, StringComparison.Ordinal));
        Assert.Equal(3, run.ExitCode); // a file the configuration names cannot be used (docs/operations.md, Exit codes)
        Assert.Contains(expected, run.StandardOutput + run.StandardError, StringComparison.Ordinal);

        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        ProcessResult fixedUp = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);
        Assert.Equal(0, fixedUp.ExitCode);
    }

    [Fact]
    public async Task Check_names_a_key_that_does_not_belong_to_the_certificate()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Yaml(fixture.Certificates.ServerCertFile, fixture.Certificates.ClientKeyFile));

        ProcessResult check = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.Equal(1, check.ExitCode);
        Assert.Contains($"listen.tls.key-file {fixture.Certificates.ClientKeyFile}: not a usable private key for {fixture.Certificates.ServerCertFile}", check.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_renewed_certificate_serves_new_sessions_after_SIGHUP_while_open_sessions_keep_theirs()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Yaml("server.crt", "server.key"));
        string certFile = Path.Combine(directory.Path, "server.crt");
        string keyFile = Path.Combine(directory.Path, "server.key");
        string first = fixture.Certificates.Issue("localhost", serverAuth: true, certFile, keyFile);
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using RawPgClient before = await TlsSessionAsync(proxy);

        string second = fixture.Certificates.Issue("localhost", serverAuth: true, certFile, keyFile);
        await proxy.SignalAsync(PosixSignal.SIGHUP);
        await proxy.WaitForOutputAsync(
            output => output.Contains("Configuration reloaded", StringComparison.Ordinal),
            Deadline,
            "pgproxy logs \"Configuration reloaded\"");
        await using RawPgClient after = await TlsSessionAsync(proxy);

        Assert.NotEqual(first, second);
        Assert.Equal(first, before.ServerCertificateHash);
        Assert.Equal(second, after.ServerCertificateHash);
        await before.SendAsync(RawPgClient.Query("SELECT 1"));
        Assert.Equal('Z', (await before.ReadUntilReadyAsync())[^1].Code);
    }

    private static async Task<RawPgClient> TlsSessionAsync(ProxyProcess proxy)
    {
        RawPgClient client = await RawPgClient.ConnectAsync("127.0.0.1", proxy.PortOf("proxy"));
        await client.StartTlsAsync(direct: false, "postgresql");
        await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);
        return client;
    }
}
