using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Tls;

/// <summary>Where SCRAM verifiers come from in a test configuration.</summary>
public enum VerifierSource
{
    None,
    AuthFile,
    AuthQuery,
}

/// <summary>Proxy configurations and client settings for the TLS tests.</summary>
public static class TlsSetups
{
    public static ProxyConfig Proxy(
        TlsPostgresFixture fixture,
        ListenTlsMode listen = ListenTlsMode.Require,
        UpstreamTlsMode upstream = UpstreamTlsMode.VerifyFull,
        VerifierSource verifiers = VerifierSource.AuthFile,
        string? upstreamHost = null,
        string? caFile = null,
        bool clientCertificate = false)
    {
        TestCertificates certificates = fixture.Certificates;
        InstanceConfig instance = TestConfigs.Instance("proxy", upstreamHost ?? fixture.Server.Host, fixture.Server.Port) with
        {
            ListenTls = new ListenTlsConfig
            {
                Mode = listen,
                CertFile = listen == ListenTlsMode.Disable ? null : certificates.ServerCertFile,
                KeyFile = listen == ListenTlsMode.Disable ? null : certificates.ServerKeyFile,
            },
            UpstreamTls = new UpstreamTlsConfig
            {
                Mode = upstream,
                CaFile = upstream is UpstreamTlsMode.VerifyCa or UpstreamTlsMode.VerifyFull ? caFile ?? certificates.CaFile : null,
                CertFile = clientCertificate ? certificates.ClientCertFile : null,
                KeyFile = clientCertificate ? certificates.ClientKeyFile : null,
            },
            Auth = verifiers switch
            {
                VerifierSource.AuthFile => new AuthConfig { AuthFile = fixture.AuthFile },
                VerifierSource.AuthQuery => new AuthConfig { AuthUser = PostgresServer.Superuser },
                _ => null,
            },
        };
        return new ProxyConfig([], new ProxySettings { ShutdownTimeout = TimeSpan.FromSeconds(5) }, [instance], Path.GetTempPath());
    }

    /// <summary>psql options for one sslmode (and channel_binding), trusting the fixture's CA; bare output.</summary>
    public static PsqlOptions Psql(TlsPostgresFixture fixture, string sslMode, string channelBinding = "prefer") => new()
    {
        Arguments = ["-A", "-t"],
        Timeout = TimeSpan.FromSeconds(30),
        Environment = new Dictionary<string, string?>
        {
            ["PGSSLMODE"] = sslMode,
            ["PGSSLROOTCERT"] = fixture.Certificates.CaFile,
            ["PGCHANNELBINDING"] = channelBinding,
        },
    };

    /// <summary>One line: the user, then whether the upstream session is encrypted (pg_stat_ssl), as psql -At prints it.</summary>
    public const string WhoAndHow = "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n";
}
