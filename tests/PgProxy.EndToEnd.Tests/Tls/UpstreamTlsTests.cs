using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Tls;

/// <summary>The proxy's connection to a PostgreSQL with ssl=on, in each redirect.tls mode, as libpq's sslmode.</summary>
[Collection(TlsPostgres.Name)]
public sealed class UpstreamTlsTests(TlsPostgresFixture fixture)
{
    [Theory]
    [InlineData(UpstreamTlsMode.Disable, "f")]
    [InlineData(UpstreamTlsMode.Prefer, "t")]
    [InlineData(UpstreamTlsMode.Require, "t")]
    [InlineData(UpstreamTlsMode.VerifyCa, "t")]
    [InlineData(UpstreamTlsMode.VerifyFull, "t")]
    public async Task Each_mode_reaches_a_tls_server_encrypted_or_not_as_libpq_would(UpstreamTlsMode mode, string encrypted)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture, listen: ListenTlsMode.Disable, upstream: mode));

        ProcessResult result = await Infrastructure.Psql.RunAsync(proxy.PsqlTarget(PostgresServer.TrustUser), TlsSetups.WhoAndHow, TlsSetups.Psql(fixture, "disable"));

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal($"{PostgresServer.TrustUser}|{encrypted}", result.StandardOutput.Trim());
    }

    [Fact]
    public async Task Verify_full_refuses_a_server_whose_chain_does_not_lead_to_ca_file()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture, listen: ListenTlsMode.Disable, caFile: fixture.Certificates.OtherCaFile));

        RawMessage error = await FirstAnswerAsync(proxy);

        Assert.Equal("08001", error.SqlState);
        Assert.Equal("FATAL", error.Fields()['S']);
        Assert.Contains("server certificate verification failed against redirect.tls.ca-file", error.Fields()['M'], StringComparison.Ordinal);
        Assert.Contains(fixture.Certificates.OtherCaFile, error.Fields()['M'], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_full_refuses_a_host_name_the_certificate_does_not_name_where_verify_ca_accepts_it()
    {
        await using ProxyHarness full = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture, listen: ListenTlsMode.Disable, upstreamHost: TlsPostgresFixture.UnnamedAddress));
        await using ProxyHarness ca = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture, listen: ListenTlsMode.Disable, upstream: UpstreamTlsMode.VerifyCa, upstreamHost: TlsPostgresFixture.UnnamedAddress));

        RawMessage error = await FirstAnswerAsync(full);
        RawMessage accepted = await FirstAnswerAsync(ca);

        Assert.Equal("08001", error.SqlState);
        Assert.Contains($"does not match host name \"{TlsPostgresFixture.UnnamedAddress}\"", error.Fields()['M'], StringComparison.Ordinal);
        Assert.Equal('R', accepted.Code);
    }

    [Fact]
    public async Task The_client_certificate_is_presented_to_the_server()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture, listen: ListenTlsMode.Disable, clientCertificate: true));

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.TrustUser), "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n", TlsSetups.Psql(fixture, "disable"));

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal("/CN=pgproxy-client", result.StandardOutput.Trim());
    }

    /// <summary>The first message the proxy answers a trust user's start-up with.</summary>
    private static async Task<RawMessage> FirstAnswerAsync(ProxyHarness proxy)
    {
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)));
        return await client.ReadMessageAsync();
    }
}
