using System.Diagnostics;
using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Tls;

/// <summary>Clients reach the proxy over TLS: psql with each sslmode, Npgsql, direct TLS, and plain text refused under require.</summary>
[Collection(TlsPostgres.Name)]
public sealed class ClientTlsTests(TlsPostgresFixture fixture)
{
    [Theory]
    [InlineData("require")]
    [InlineData("verify-ca")]
    [InlineData("verify-full")]
    public async Task Psql_logs_in_with_each_sslmode_and_scram_across_tls_on_both_legs(string sslMode)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture));

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.ScramUser, PostgresServer.ScramPassword), TlsSetups.WhoAndHow, TlsSetups.Psql(fixture, sslMode));

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal($"{PostgresServer.ScramUser}|t", result.StandardOutput.Trim());
    }

    [Theory]
    [InlineData(false, false, "channel binding required, but SSL not in use")]
    [InlineData(true, false, "channel binding is required, but server did not offer an authentication method that supports channel binding")]
    [InlineData(false, true, "channel binding required, but SSL not in use")]
    [InlineData(true, true, "channel binding is required, but server did not offer an authentication method that supports channel binding")]
    public async Task Psql_requiring_channel_binding_fails_at_once_with_libpqs_own_error(bool clientTls, bool upstreamTls, string libpqError)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(
            fixture,
            listen: clientTls ? ListenTlsMode.Require : ListenTlsMode.Disable,
            upstream: upstreamTls ? UpstreamTlsMode.VerifyFull : UpstreamTlsMode.Disable));
        var elapsed = Stopwatch.StartNew();

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.ScramUser, PostgresServer.ScramPassword),
            "SELECT 1;\n",
            TlsSetups.Psql(fixture, clientTls ? "verify-full" : "disable", channelBinding: "require"));

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(libpqError, result.StandardError, StringComparison.Ordinal);
        Assert.True(elapsed.Elapsed < TimeSpan.FromSeconds(10), $"psql took {elapsed.Elapsed}");
    }

    [Theory]
    [InlineData(SslMode.Require, PostgresServer.ScramUser, PostgresServer.ScramPassword)]
    [InlineData(SslMode.VerifyFull, PostgresServer.ScramUser, PostgresServer.ScramPassword)]
    [InlineData(SslMode.VerifyFull, PostgresServer.Md5User, PostgresServer.Md5Password)]
    public async Task Npgsql_logs_in_over_tls(SslMode sslMode, string user, string password)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture));
        var builder = new NpgsqlConnectionStringBuilder(proxy.ConnectionString(user, password))
        {
            SslMode = sslMode,
            RootCertificate = fixture.Certificates.CaFile,
        };

        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT current_user || ':' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", connection);

        Assert.Equal($"{user}:True", (string?)await command.ExecuteScalarAsync(), ignoreCase: true);
    }

    [Fact]
    public async Task Npgsql_direct_tls_negotiation_is_accepted()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture));
        var builder = new NpgsqlConnectionStringBuilder(proxy.ConnectionString(PostgresServer.ScramUser, PostgresServer.ScramPassword))
        {
            SslMode = SslMode.VerifyFull,
            SslNegotiation = SslNegotiation.Direct,
            RootCertificate = fixture.Certificates.CaFile,
        };

        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT 40 + 2", connection);

        Assert.Equal(42, (int)(await command.ExecuteScalarAsync())!);
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("TLS handshake done", StringComparison.Ordinal) && line.Contains("direct", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Direct_tls_without_the_postgresql_alpn_is_refused()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture));
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        try
        {
            await client.StartTlsAsync(direct: true);
        }
        catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
        {
            // Refusing during the handshake is as good as closing after it.
            return;
        }

        Assert.True(await client.IsClosedByPeerAsync());
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("without ALPN", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_plain_text_client_is_refused_under_require()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture));
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)));
        RawMessage error = await client.ReadMessageAsync();

        Assert.Equal('E', error.Code);
        Assert.Equal("28000", error.SqlState);
        Assert.Equal("TLS is required", error.Fields()['M']);
        Assert.Equal("FATAL", error.Fields()['S']);
        Assert.True(await client.IsClosedByPeerAsync());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Under_allow_clients_choose_tls_or_plain_text(bool tls)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture, listen: ListenTlsMode.Allow));
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        if (tls)
        {
            await client.StartTlsAsync(direct: false, "postgresql");
        }

        List<RawMessage> messages = await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);

        Assert.Equal('Z', messages[^1].Code);
        Assert.Equal(tls, client.ServerCertificateHash is not null);
    }

    [Fact]
    public async Task Plain_text_sent_after_an_ssl_request_is_refused()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture));
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        // SSLRequest and a StartupMessage in one write: the second was never meant to travel in plain text.
        await client.SendAsync([0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F, .. RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.TrustUser))]);
        RawMessage error = await client.ReadMessageAsync();

        Assert.Equal("08P01", error.SqlState);
        Assert.Equal("received unencrypted data after SSL request", error.Fields()['M']);
    }

    [Fact]
    public async Task A_servers_refusal_of_a_tls_client_reaches_it_alone_and_unchanged()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture));
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await client.StartTlsAsync(direct: false, "postgresql");

        // No pg_hba.conf line names this user: the server's first answer is its refusal.
        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", "no_such_user"), ("database", PostgresServer.Database)));
        RawMessage error = await client.ReadMessageAsync();
        await proxy.Logs.WaitForLineAsync(
            line => line.Contains("closed: client", StringComparison.Ordinal),
            TimeSpan.FromSeconds(20),
            "the session's close is logged");

        Assert.Equal("28000", error.SqlState);
        Assert.Contains("no pg_hba.conf entry", error.Fields()['M'], StringComparison.Ordinal);
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("closed: client", StringComparison.Ordinal) && line.EndsWith("(upstream closed)", StringComparison.Ordinal));
    }
}
