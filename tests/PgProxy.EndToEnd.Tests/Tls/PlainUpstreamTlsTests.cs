using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Tls;

/// <summary>redirect.tls against the shared plain-text server: prefer falls back on 'N', require never does.</summary>
[Collection(SharedPostgres.Name)]
public sealed class PlainUpstreamTlsTests(PostgresFixture fixture)
{
    private static ProxyConfig Config(PostgresServer server, UpstreamTlsMode mode)
    {
        InstanceConfig instance = TestConfigs.Instance("proxy", server.Host, server.Port) with { UpstreamTls = new UpstreamTlsConfig { Mode = mode } };
        return new ProxyConfig([], new ProxySettings(), [instance], Path.GetTempPath());
    }

    [Fact]
    public async Task Prefer_falls_back_to_plain_text_when_the_server_answers_N()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Config(fixture.Server, UpstreamTlsMode.Prefer));
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        List<RawMessage> messages = await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);

        Assert.Equal('Z', messages[^1].Code);
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("connection is plain text", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Require_refuses_a_server_without_tls_with_08001()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Config(fixture.Server, UpstreamTlsMode.Require));
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)));
        RawMessage error = await client.ReadMessageAsync();

        Assert.Equal("08001", error.SqlState);
        Assert.EndsWith("server does not support SSL, but redirect.tls mode require requires it", error.Fields()['M'], StringComparison.Ordinal);
    }
}
