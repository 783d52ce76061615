using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tls;

/// <summary>
/// The TLS a listener offers its clients: the certificate loaded when the instance starts (or reloads) and the
/// handshake options built from it. Sessions take the one current when they start and keep it.
/// </summary>
internal sealed class ServerTls
{
    /// <summary>The ALPN protocol of PostgreSQL; a direct TLS connection must announce it.</summary>
    public static readonly SslApplicationProtocol PostgresProtocol = new("postgresql");

    private readonly SslStreamCertificateContext certificateContext;

    private readonly SslProtocols protocols;

    private ServerTls(ListenTlsMode mode, SslStreamCertificateContext certificateContext, X509Certificate2 certificate, SslProtocols protocols)
    {
        Mode = mode;
        this.certificateContext = certificateContext;
        Certificate = certificate;
        this.protocols = protocols;
    }

    public ListenTlsMode Mode { get; }

    public X509Certificate2 Certificate { get; }

    /// <summary>Loads the certificate and key; null when the mode is disable.</summary>
    /// <param name="config">The TLS settings.</param>
    /// <param name="key">The setting they come from, for errors (<c>admin.tls</c> for the console's listener).</param>
    /// <exception cref="SecurityMaterialException">A file is missing, unreadable or not a certificate or key.</exception>
    public static ServerTls? Load(ListenTlsConfig config, string key = "listen.tls")
    {
        // The files are read in a method of their own, so that a process without TLS loads no cryptography assembly.
        return config.Enabled ? LoadFiles(config, key) : null;
    }

    private static ServerTls LoadFiles(ListenTlsConfig config, string key)
    {
        (X509Certificate2 certificate, X509Certificate2Collection intermediates) = TlsFiles.LoadCertificateWithKey(
            key, config.CertFile!, config.KeyFile!, config.KeyPassword);
        if (!certificate.HasPrivateKey)
        {
            throw new SecurityMaterialException($"{key}.key-file {config.KeyFile}: holds no private key for {config.CertFile}");
        }

        // offline: the chain is what the files give; building it must not wait on the network.
        var context = SslStreamCertificateContext.Create(certificate, intermediates, offline: true);
        return new ServerTls(config.Mode, context, certificate, Protocols(config.MinVersion));
    }

    /// <summary>
    /// The versions offered from <c>min-version</c> up. Never below 1.2, whatever the system's OpenSSL would allow:
    /// 1.0 and 1.1 are deprecated (RFC 8996), and PostgreSQL's own default floor is 1.2.
    /// </summary>
    internal static SslProtocols Protocols(TlsMinVersion minVersion) =>
        minVersion == TlsMinVersion.Tls13 ? SslProtocols.Tls13 : SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>Handshake options for one session: TLS from min-version (1.2 by default) up, ALPN "postgresql", no client certificate asked for.</summary>
    public SslServerAuthenticationOptions Options() => new()
    {
        ServerCertificateContext = certificateContext,
        EnabledSslProtocols = protocols,
        ApplicationProtocols = [PostgresProtocol],
        ClientCertificateRequired = false,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
    };
}
