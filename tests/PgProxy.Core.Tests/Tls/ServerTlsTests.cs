using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PgProxy.Core.Configuration;
using PgProxy.Core.Tls;
using PgProxy.TestSupport;

namespace PgProxy.Core.Tests.Tls;

/// <summary>Loading listen.tls files: encrypted keys with key-password, and errors that name the file.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // key file modes are Unix's
public sealed class ServerTlsTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("pgproxy-server-tls-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private (string CertFile, string KeyFile) WriteSelfSigned(string? keyPassword)
    {
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        using X509Certificate2 certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        string certFile = Path.Combine(directory, "server.crt");
        string keyFile = Path.Combine(directory, "server.key");
        File.WriteAllText(certFile, certificate.ExportCertificatePem());
        KeyFiles.Write(keyFile, keyPassword is null
            ? key.ExportPkcs8PrivateKeyPem()
            : key.ExportEncryptedPkcs8PrivateKeyPem(keyPassword, new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 10_000)));
        return (certFile, keyFile);
    }

    [Fact]
    public void An_encrypted_key_loads_with_its_key_password()
    {
        (string certFile, string keyFile) = WriteSelfSigned("s3cret");

        ServerTls? tls = ServerTls.Load(new ListenTlsConfig { Mode = ListenTlsMode.Require, CertFile = certFile, KeyFile = keyFile, KeyPassword = "s3cret" });

        Assert.NotNull(tls);
        Assert.True(tls.Certificate.HasPrivateKey);
        Assert.Equal("CN=localhost", tls.Certificate.Subject);
    }

    [Fact]
    public void An_encrypted_key_without_key_password_is_named_with_a_hint()
    {
        (string certFile, string keyFile) = WriteSelfSigned("s3cret");

        var error = Assert.Throws<SecurityMaterialException>(() =>
            ServerTls.Load(new ListenTlsConfig { Mode = ListenTlsMode.Allow, CertFile = certFile, KeyFile = keyFile }));

        Assert.StartsWith($"listen.tls.key-file {keyFile}: not a usable private key for {certFile}", error.Message, StringComparison.Ordinal);
        Assert.EndsWith("(an encrypted key needs key-password)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_certificate_file_without_a_certificate_is_named()
    {
        (_, string keyFile) = WriteSelfSigned(null);

        // The key file given as the certificate: PEM, but no certificate in it.
        var error = Assert.Throws<SecurityMaterialException>(() =>
            ServerTls.Load(new ListenTlsConfig { Mode = ListenTlsMode.Allow, CertFile = keyFile, KeyFile = keyFile }));

        Assert.Equal($"listen.tls.cert-file {keyFile}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)", error.Message);
    }

    [Theory]
    [InlineData(TlsMinVersion.Tls12, System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13)]
    [InlineData(TlsMinVersion.Tls13, System.Security.Authentication.SslProtocols.Tls13)]
    public void Handshakes_offer_tls_from_min_version_up_and_never_below_1_2(TlsMinVersion minVersion, System.Security.Authentication.SslProtocols expected)
    {
        (string certFile, string keyFile) = WriteSelfSigned(null);

        ServerTls tls = ServerTls.Load(new ListenTlsConfig { Mode = ListenTlsMode.Require, CertFile = certFile, KeyFile = keyFile, MinVersion = minVersion })!;

        Assert.Equal(expected, tls.Options().EnabledSslProtocols);
    }

    [Theory]
    [InlineData(UnixFileMode.OtherRead)]
    [InlineData(UnixFileMode.GroupRead)]
    [InlineData(UnixFileMode.GroupWrite)]
    public void A_key_file_its_owner_shares_is_refused_in_one_line_naming_the_key_and_the_file(UnixFileMode extra)
    {
        (string certFile, string keyFile) = WriteSelfSigned(null);
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | extra);
        string mode = "0" + Convert.ToString((int)File.GetUnixFileMode(keyFile), 8);

        var error = Assert.Throws<SecurityMaterialException>(() =>
            ServerTls.Load(new ListenTlsConfig { Mode = ListenTlsMode.Require, CertFile = certFile, KeyFile = keyFile }, "admin.tls"));

        // The file is the test's own: the rule for a key owned by the user PgProxy runs as (0600) applies, root or not.
        Assert.Equal(
            $"admin.tls.key-file {keyFile}: permissions {mode} are too open for a private key; it needs 0600 or less, as it is owned by the user PgProxy runs as (chmod 600 {keyFile})",
            error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void An_owner_only_key_file_loads_and_so_does_a_read_only_one()
    {
        (string certFile, string keyFile) = WriteSelfSigned(null);

        Assert.NotNull(ServerTls.Load(new ListenTlsConfig { Mode = ListenTlsMode.Require, CertFile = certFile, KeyFile = keyFile }));
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead);
        Assert.NotNull(ServerTls.Load(new ListenTlsConfig { Mode = ListenTlsMode.Require, CertFile = certFile, KeyFile = keyFile }));
    }

    [Fact]
    public void A_key_file_owned_by_another_user_than_pgproxy_or_root_is_refused()
    {
        // Only root can give a file away: run as anyone else, there is nothing to try (the CI runs as root).
        if (Environment.UserName != "root")
        {
            return;
        }

        (string certFile, string keyFile) = WriteSelfSigned(null);
        ProcessResultOf("chown", "12345", keyFile);

        var error = Assert.Throws<SecurityMaterialException>(() =>
            ServerTls.Load(new ListenTlsConfig { Mode = ListenTlsMode.Require, CertFile = certFile, KeyFile = keyFile }));

        Assert.Equal(
            $"listen.tls.key-file {keyFile}: a private key must be owned by the user PgProxy runs as (uid 0) or by root; it is owned by uid 12345",
            error.Message);
    }

    [Fact]
    public void A_key_file_owned_by_root_that_others_can_read_is_refused_by_the_rule_that_applies()
    {
        // /etc/passwd: owned by root, 0644 on every Linux. Run as root, the owner is PgProxy's own user (0600 applies);
        // run as anyone else, root's rule applies (0640).
        const string file = "/etc/passwd";
        (string certFile, _) = WriteSelfSigned(null);
        string needed = Environment.UserName == "root" ? "0600 or less, as it is owned by the user PgProxy runs as" : "0640 or less, as it is owned by root";

        var error = Assert.Throws<SecurityMaterialException>(() =>
            ServerTls.Load(new ListenTlsConfig { Mode = ListenTlsMode.Require, CertFile = certFile, KeyFile = file }));

        Assert.Equal($"listen.tls.key-file {file}: permissions 0644 are too open for a private key; it needs {needed} (chmod 600 {file})", error.Message);
    }

    private static void ProcessResultOf(string program, params string[] arguments)
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(program, arguments) { UseShellExecute = false })!;
        Assert.True(process.WaitForExit(TimeSpan.FromSeconds(30)), $"{program} did not end");
        Assert.Equal(0, process.ExitCode);
    }

    [Fact]
    public void Disable_reads_no_file() =>
        Assert.Null(ServerTls.Load(new ListenTlsConfig { Mode = ListenTlsMode.Disable, CertFile = "/nonexistent.crt", KeyFile = "/nonexistent.key" }));
}
