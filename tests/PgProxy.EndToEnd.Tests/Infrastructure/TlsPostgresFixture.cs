namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A second PostgreSQL server, with ssl=on and the certificates of <see cref="TestCertificates"/>, for the TLS
/// tests; the shared server of <see cref="PostgresFixture"/> stays plain text. It also listens on 127.0.0.2, an
/// address its certificate does not name. <see cref="AuthFile"/> holds scram_user's verifier as pg_authid has it.
/// </summary>
public sealed class TlsPostgresFixture : IAsyncLifetime
{
    /// <summary>An address of this machine the server listens on that its certificate does not name.</summary>
    public const string UnnamedAddress = "127.0.0.2";

    private PostgresServer? _server;
    private TestCertificates? _certificates;

    public PostgresServer Server => _server ?? throw new InvalidOperationException("The TLS PostgreSQL fixture has not been initialized.");

    public TestCertificates Certificates => _certificates ?? throw new InvalidOperationException("The TLS PostgreSQL fixture has not been initialized.");

    public string AuthFile => Path.Combine(Certificates.DirectoryPath, "users.txt");

    public async Task InitializeAsync()
    {
        _certificates = TestCertificates.Create();
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
        });
        string verifier = await _server.QueryAsSuperuserAsync($"SELECT rolpassword FROM pg_authid WHERE rolname = '{PostgresServer.ScramUser}'");
        await File.WriteAllTextAsync(AuthFile, $"# user and verifier, as in pg_authid\n\"{PostgresServer.ScramUser}\" \"{verifier}\"\n");
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
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
