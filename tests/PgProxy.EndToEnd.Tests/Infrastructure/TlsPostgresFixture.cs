namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A second PostgreSQL server, with ssl=on and the certificates of <see cref="TestCertificates"/>, for the TLS
/// tests; the shared server of <see cref="PostgresFixture"/> stays plain text. It also listens on 127.0.0.2, an
/// address its certificate does not name. <see cref="AuthFile"/> holds scram_user's verifier as pg_authid has it.
/// Beside it runs a plain-text server (<see cref="PlainServer"/>, ssl=off, <see cref="PlainAuthFile"/>), so a test
/// can put the same proxy configuration in front of either, as users do with <c>redirect.tls.mode: prefer</c>.
/// </summary>
public sealed class TlsPostgresFixture : IAsyncLifetime
{
    /// <summary>An address of this machine the server listens on that its certificate does not name.</summary>
    public const string UnnamedAddress = "127.0.0.2";

    /// <summary>A SCRAM role the TLS server admits over TLS only (hostssl): a plain-text connection finds no pg_hba.conf line.</summary>
    public const string SslOnlyUser = "ssl_only_user";

    /// <summary>A SCRAM role of the TLS server that a plain-text connection asks for a cleartext password instead.</summary>
    public const string ScramOverSslUser = "scram_ssl_user";

    private PostgresServer? _server;
    private PostgresServer? _plainServer;
    private TestCertificates? _certificates;

    public PostgresServer Server => _server ?? throw new InvalidOperationException("The TLS PostgreSQL fixture has not been initialized.");

    public TestCertificates Certificates => _certificates ?? throw new InvalidOperationException("The TLS PostgreSQL fixture has not been initialized.");

    public string AuthFile => Path.Combine(Certificates.DirectoryPath, "users.txt");

    /// <summary>A server with ssl=off and the fixture's usual roles.</summary>
    public PostgresServer PlainServer => _plainServer ?? throw new InvalidOperationException("The TLS PostgreSQL fixture has not been initialized.");

    /// <summary>scram_user's verifier as the plain server's pg_authid has it.</summary>
    public string PlainAuthFile => Path.Combine(Certificates.DirectoryPath, "plain-users.txt");

    public async Task InitializeAsync()
    {
        _certificates = TestCertificates.Create();
        Task<PostgresServer> plain = PostgresServer.StartNewAsync();
        _server = await PostgresServer.StartNewAsync(new PostgresServerOptions
        {
            Files = new Dictionary<string, string>
            {
                ["server.crt"] = await File.ReadAllTextAsync(_certificates.ServerCertFile),
                ["server.key"] = await File.ReadAllTextAsync(_certificates.ServerKeyFile),
                ["root.crt"] = await File.ReadAllTextAsync(_certificates.CaFile),
            },
            Settings =
            [
                $"listen_addresses = '127.0.0.1,{UnnamedAddress}'",
                "ssl = on",
                "ssl_cert_file = '{root}/server.crt'",
                "ssl_key_file = '{root}/server.key'",

                // Asks clients for a certificate (without requiring one), so pg_stat_ssl shows the proxy's.
                "ssl_ca_file = '{root}/root.crt'",
            ],
            HostBasedAuthentication =
            [
                $"hostssl   all {SslOnlyUser}      127.0.0.1/32 scram-sha-256",
                $"hostssl   all {ScramOverSslUser} 127.0.0.1/32 scram-sha-256",
                $"hostnossl all {ScramOverSslUser} 127.0.0.1/32 password",
            ],
            SetupSql = $"""
                SET password_encryption = 'scram-sha-256';
                CREATE ROLE {SslOnlyUser} LOGIN PASSWORD '{PostgresServer.ScramPassword}';
                CREATE ROLE {ScramOverSslUser} LOGIN PASSWORD '{PostgresServer.ScramPassword}';
                GRANT ALL ON DATABASE {PostgresServer.Database} TO {SslOnlyUser}, {ScramOverSslUser};
                """,
        });
        _plainServer = await plain;
        await WriteAuthFileAsync(_server, AuthFile);
        await WriteAuthFileAsync(_plainServer, PlainAuthFile);
    }

    private static async Task WriteAuthFileAsync(PostgresServer server, string file)
    {
        string verifier = await server.QueryAsSuperuserAsync($"SELECT rolpassword FROM pg_authid WHERE rolname = '{PostgresServer.ScramUser}'");
        await File.WriteAllTextAsync(file, $"# user and verifier, as in pg_authid\n\"{PostgresServer.ScramUser}\" \"{verifier}\"\n");
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        if (_plainServer is not null)
        {
            await _plainServer.DisposeAsync();
        }

        _certificates?.Dispose();
    }
}

/// <summary>Test classes marked <c>[Collection(TlsPostgres.Name)]</c> share one <see cref="TlsPostgresFixture"/>.</summary>
[CollectionDefinition(Name)]
public sealed class TlsPostgres : ICollectionFixture<TlsPostgresFixture>
{
    public const string Name = "postgres-tls";
}
