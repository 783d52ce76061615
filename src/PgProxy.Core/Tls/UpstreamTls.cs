using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using PgProxy.Core.Configuration;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Tls;

/// <summary>The upstream refused or failed TLS as <c>redirect.tls</c> demands; the message says why, for the client and the log.</summary>
internal sealed class UpstreamTlsException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// TLS to the upstream with libpq's sslmode semantics: SSLRequest first; 'N' falls back to plain text under prefer
/// only; the chain is checked against ca-file under verify-ca and verify-full (and under prefer or require when a
/// ca-file is given, as libpq does when a root certificate file exists); verify-full also checks the host name.
/// </summary>
internal sealed class UpstreamTls
{
    private static readonly byte[] SslRequest = BuildSslRequest();

    private readonly UpstreamTlsConfig config;
    private readonly X509Certificate2Collection? roots;
    private readonly X509Certificate2? clientCertificate;

    private UpstreamTls(UpstreamTlsConfig config, X509Certificate2Collection? roots, X509Certificate2? clientCertificate)
    {
        this.config = config;
        this.roots = roots;
        this.clientCertificate = clientCertificate;
    }

    public UpstreamTlsMode Mode => config.Mode;

    /// <summary>Loads ca-file and the client certificate, if any.</summary>
    /// <exception cref="SecurityMaterialException">A file is missing, unreadable or not PEM.</exception>
    public static UpstreamTls Load(UpstreamTlsConfig config)
    {
        // The files are read in a method of their own, so that a process without TLS loads no cryptography assembly.
        return config.Mode == UpstreamTlsMode.Disable ? new UpstreamTls(config, null, null) : LoadFiles(config);
    }

    private static UpstreamTls LoadFiles(UpstreamTlsConfig config)
    {
        X509Certificate2Collection? roots = config.CaFile is { } caFile ? TlsFiles.LoadCertificates("redirect.tls.ca-file", caFile) : null;
        X509Certificate2? client = null;
        if (config.CertFile is { } certFile && config.KeyFile is { } keyFile)
        {
            client = TlsFiles.LoadCertificateWithKey("redirect.tls", certFile, keyFile, keyPassword: null).Certificate;
        }

        return new UpstreamTls(config, roots, client);
    }

    /// <summary>
    /// Negotiates encryption on a freshly connected plain stream. Returns the stream to speak the protocol on (a
    /// <see cref="SslStream"/> over the plain one, or the plain one when the mode is disable or the server declines
    /// under prefer) and whether it is encrypted. The returned stream owns the plain one; on failure it is disposed.
    /// </summary>
    /// <exception cref="UpstreamTlsException">The server declined or the handshake or verification failed.</exception>
    public async Task<(Stream Stream, bool Encrypted)> NegotiateAsync(Stream plain, string host, CancellationToken cancellationToken)
    {
        if (config.Mode == UpstreamTlsMode.Disable)
        {
            return (plain, false);
        }

        try
        {
            await plain.WriteAsync(SslRequest, cancellationToken).ConfigureAwait(false);
            byte[] answer = new byte[1];

            // Exactly one byte: anything the server sent after it would be unencrypted data before the handshake.
            int read = await plain.ReadAsync(answer, cancellationToken).ConfigureAwait(false);
            switch (read == 0 ? -1 : answer[0])
            {
                case 'N' when config.Mode == UpstreamTlsMode.Prefer:
                    return (plain, false);
                case 'N':
                    throw new UpstreamTlsException($"server does not support SSL, but redirect.tls mode {Name(config.Mode)} requires it");
                case 'S':
                    return (await HandshakeAsync(plain, host, cancellationToken).ConfigureAwait(false), true);
                case -1:
                    throw new UpstreamTlsException("server closed the connection during SSL negotiation");
                default:
                    throw new UpstreamTlsException($"received invalid response to SSL negotiation: '{(char)answer[0]}'");
            }
        }
        catch (OperationCanceledException)
        {
            await plain.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        catch (Exception e)
        {
            await plain.DisposeAsync().ConfigureAwait(false);
            throw e is UpstreamTlsException ? e : new UpstreamTlsException($"SSL negotiation failed: {e.Message}", e);
        }
    }

    private async Task<SslStream> HandshakeAsync(Stream plain, string host, CancellationToken cancellationToken)
    {
        string? verificationFailure = null;
        var ssl = new SslStream(plain, leaveInnerStreamOpen: false);
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = host,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            ApplicationProtocols = [ServerTls.PostgresProtocol],
            ClientCertificates = clientCertificate is null ? null : [clientCertificate],
            RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
            {
                verificationFailure = Verify(certificate as X509Certificate2, chain, errors, host);
                return verificationFailure is null;
            },
        };
        try
        {
            await ssl.AuthenticateAsClientAsync(options, cancellationToken).ConfigureAwait(false);
            return ssl;
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new UpstreamTlsException(verificationFailure ?? $"SSL handshake failed: {e.Message}", e);
        }
    }

    /// <summary>Null when the server certificate passes what the mode asks; otherwise why it does not.</summary>
    private string? Verify(X509Certificate2? certificate, X509Chain? presented, SslPolicyErrors errors, string host)
    {
        bool checkChain = config.Mode is UpstreamTlsMode.VerifyCa or UpstreamTlsMode.VerifyFull || roots is not null;
        if (!checkChain)
        {
            return null;
        }

        if (certificate is null)
        {
            return "server certificate verification failed: the server sent no certificate";
        }

        if (roots is null)
        {
            // No ca-file: the system's trusted roots, as .NET checked them.
            if ((errors & SslPolicyErrors.RemoteCertificateChainErrors) != 0)
            {
                return $"server certificate verification failed: {Describe(presented)} (no redirect.tls.ca-file given: the system's trusted roots were used)";
            }
        }
        else
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(roots);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            if (presented is not null)
            {
                foreach (X509ChainElement element in presented.ChainElements)
                {
                    chain.ChainPolicy.ExtraStore.Add(element.Certificate);
                }
            }

            if (!chain.Build(certificate))
            {
                return $"server certificate verification failed against redirect.tls.ca-file {config.CaFile}: {Describe(chain)}";
            }
        }

        if (config.Mode == UpstreamTlsMode.VerifyFull && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
        {
            return $"server certificate for \"{certificate.GetNameInfo(X509NameType.DnsName, forIssuer: false)}\" does not match host name \"{host}\"";
        }

        return null;
    }

    private static string Describe(X509Chain? chain)
    {
        if (chain is null || chain.ChainStatus.Length == 0)
        {
            return "the certificate chain is not trusted";
        }

        return string.Join("; ", chain.ChainStatus.Select(status => status.StatusInformation.Trim()).Where(text => text.Length > 0).Distinct());
    }

    internal static string Name(UpstreamTlsMode mode) => mode switch
    {
        UpstreamTlsMode.VerifyCa => "verify-ca",
        UpstreamTlsMode.VerifyFull => "verify-full",
        _ => mode.ToString().ToLowerInvariant(),
    };

    private static byte[] BuildSslRequest()
    {
        byte[] request = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(request, 8);
        BinaryPrimitives.WriteInt32BigEndian(request.AsSpan(4), StartupCodes.SslRequest);
        return request;
    }
}
