using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PgProxy.Core.Configuration;
using PgProxy.Core.Tls;

namespace PgProxy.Core.Tests.Tls;

/// <summary>Loading listen.tls files: encrypted keys with key-password, and errors that name the file.</summary>
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
        File.WriteAllText(keyFile, keyPassword is null
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

    [Fact]
    public void Disable_reads_no_file() =>
        Assert.Null(ServerTls.Load(new ListenTlsConfig { Mode = ListenTlsMode.Disable, CertFile = "/nonexistent.crt", KeyFile = "/nonexistent.key" }));
}
