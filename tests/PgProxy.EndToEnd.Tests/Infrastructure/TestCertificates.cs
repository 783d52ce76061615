using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PgProxy.TestSupport;

namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A throwaway certificate authority and what it signs, as PEM files in a temporary folder: a server certificate
/// for localhost and 127.0.0.1, a client certificate, and a second, unrelated CA to be refused.
/// </summary>
public sealed class TestCertificates : IDisposable
{
    private readonly X509Certificate2 authority;
    private readonly ECDsa authorityKey;

    private TestCertificates(string directory, X509Certificate2 authority, ECDsa authorityKey)
    {
        DirectoryPath = directory;
        this.authority = authority;
        this.authorityKey = authorityKey;
    }

    public string DirectoryPath { get; }

    public string CaFile => Path.Combine(DirectoryPath, "root.crt");

    /// <summary>A CA that signed nothing here: verification against it must fail.</summary>
    public string OtherCaFile => Path.Combine(DirectoryPath, "other-root.crt");

    public string ServerCertFile => Path.Combine(DirectoryPath, "server.crt");

    public string ServerKeyFile => Path.Combine(DirectoryPath, "server.key");

    public string ClientCertFile => Path.Combine(DirectoryPath, "client.crt");

    public string ClientKeyFile => Path.Combine(DirectoryPath, "client.key");

    public static TestCertificates Create()
    {
        string directory = Directory.CreateTempSubdirectory("pgproxy-tls-").FullName;
        (X509Certificate2 authority, ECDsa key) = NewAuthority("PgProxy Test CA");
        var certificates = new TestCertificates(directory, authority, key);
        File.WriteAllText(certificates.CaFile, authority.ExportCertificatePem());
        (X509Certificate2 other, ECDsa otherKey) = NewAuthority("Some Other CA");
        File.WriteAllText(certificates.OtherCaFile, other.ExportCertificatePem());
        other.Dispose();
        otherKey.Dispose();
        certificates.Issue("localhost", serverAuth: true, certificates.ServerCertFile, certificates.ServerKeyFile);
        certificates.Issue("pgproxy-client", serverAuth: false, certificates.ClientCertFile, certificates.ClientKeyFile);
        return certificates;
    }

    /// <summary>Signs a new certificate for localhost and 127.0.0.1 into the two files (a renewal, say); returns its SHA-1 hash.</summary>
    public string Issue(string commonName, bool serverAuth, string certFile, string keyFile)
    {
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [Oid.FromOidValue(serverAuth ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2", OidGroup.EnhancedKeyUsage)], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(authority, true, false));
        if (serverAuth)
        {
            var names = new SubjectAlternativeNameBuilder();
            names.AddDnsName("localhost");
            names.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(names.Build());
        }

        byte[] serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7F;
        using X509Certificate2 certificate = request.Create(authority.SubjectName, X509SignatureGenerator.CreateForECDsa(authorityKey), DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30), serial);
        File.WriteAllText(certFile, certificate.ExportCertificatePem());
        KeyFiles.Write(keyFile, key.ExportPkcs8PrivateKeyPem());
        return certificate.GetCertHashString();
    }

    public void Dispose()
    {
        authority.Dispose();
        authorityKey.Dispose();
        try
        {
            Directory.Delete(DirectoryPath, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    private static (X509Certificate2 Certificate, ECDsa Key) NewAuthority(string name)
    {
        ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return (request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30)), key);
    }
}
