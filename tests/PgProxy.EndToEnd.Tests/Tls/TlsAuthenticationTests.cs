using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Tls;

/// <summary>
/// md5 and SCRAM users through every combination of TLS on the client leg and the upstream leg, with psql's
/// default channel_binding (prefer). With TLS on both legs SCRAM ends at the proxy, from auth-file or auth-query.
/// </summary>
[Collection(TlsPostgres.Name)]
public sealed class TlsAuthenticationTests(TlsPostgresFixture fixture)
{
    public static TheoryData<string, string, bool, bool, VerifierSource> Combinations()
    {
        var data = new TheoryData<string, string, bool, bool, VerifierSource>();
        foreach ((string user, string password) in new[] { (PostgresServer.Md5User, PostgresServer.Md5Password), (PostgresServer.ScramUser, PostgresServer.ScramPassword) })
        {
            data.Add(user, password, false, false, VerifierSource.None);
            data.Add(user, password, true, false, VerifierSource.None);
            data.Add(user, password, false, true, VerifierSource.None);
            data.Add(user, password, true, true, VerifierSource.AuthFile);
            data.Add(user, password, true, true, VerifierSource.AuthQuery);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public async Task Password_users_log_in_whichever_legs_are_encrypted(string user, string password, bool clientTls, bool upstreamTls, VerifierSource verifiers)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(
            fixture,
            listen: clientTls ? ListenTlsMode.Require : ListenTlsMode.Disable,
            upstream: upstreamTls ? UpstreamTlsMode.VerifyFull : UpstreamTlsMode.Disable,
            verifiers: verifiers));

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(user, password), TlsSetups.WhoAndHow, TlsSetups.Psql(fixture, clientTls ? "verify-full" : "disable"));

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal($"{user}|{(upstreamTls ? "t" : "f")}", result.StandardOutput.Trim());
        bool endedAtProxy = proxy.Logs.Lines.Any(line => line.Contains("ended at the proxy", StringComparison.Ordinal));
        Assert.Equal(clientTls && upstreamTls && user == PostgresServer.ScramUser, endedAtProxy);
    }

    [Fact]
    public async Task Scram_across_tls_on_both_legs_without_an_auth_section_names_the_missing_setting()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture, verifiers: VerifierSource.None));

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.ScramUser, PostgresServer.ScramPassword), "SELECT 1;\n", TlsSetups.Psql(fixture, "require"));

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("set auth.auth-file or auth.auth-user for instance \"proxy\"", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("channel binding negotiation", result.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(VerifierSource.AuthFile)]
    [InlineData(VerifierSource.AuthQuery)]
    public async Task A_wrong_password_is_refused_at_the_proxy_as_postgresql_words_it(VerifierSource verifiers)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TlsSetups.Proxy(fixture, verifiers: verifiers));

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.ScramUser, "not-the-password"), "SELECT 1;\n", TlsSetups.Psql(fixture, "require"));

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains($"password authentication failed for user \"{PostgresServer.ScramUser}\"", result.StandardError, StringComparison.Ordinal);
    }
}
