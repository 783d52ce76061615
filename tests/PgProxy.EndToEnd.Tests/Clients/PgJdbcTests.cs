using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.EndToEnd.Tests.Tls;
using PgProxy.TestSupport;

namespace PgProxy.EndToEnd.Tests.Clients;

/// <summary>
/// pgJDBC (Debian's libpostgresql-jdbc-java, run by the JDK as JdbcLogin.java) through the default upstream TLS
/// (prefer) against a server with ssl=on: SCRAM and md5 log in with the client leg plain or TLS, with and without an
/// auth section. A third client library beside Npgsql and libpq, since each answers SCRAM's binding flag its own way.
/// </summary>
[Collection(TlsPostgres.Name)]
public sealed class PgJdbcTests(TlsPostgresFixture fixture)
{
    private const string Driver = "/usr/share/java/postgresql.jar";

    public static TheoryData<string, bool, bool> Combinations()
    {
        var data = new TheoryData<string, bool, bool>();
        foreach (string user in new[] { PostgresServer.ScramUser, PostgresServer.Md5User })
        {
            foreach (bool clientTls in new[] { false, true })
            {
                data.Add(user, clientTls, false);
                data.Add(user, clientTls, true);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public async Task PgJdbc_logs_in_through_the_default_upstream_tls(string user, bool clientTls, bool authSection)
    {
        Assert.True(File.Exists(Driver) && Java() is not null, $"pgJDBC needs a JDK and {Driver}: apt-get install default-jdk-headless libpostgresql-jdbc-java (scripts/test.sh does when it runs as root)");
        ProxyConfig config = TlsSetups.Proxy(fixture, listen: ListenTlsMode.Allow, upstream: UpstreamTlsMode.Prefer, verifiers: authSection ? VerifierSource.AuthFile : VerifierSource.None);
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config);
        string url = $"jdbc:postgresql://{proxy.Host}:{proxy.Port}/{PostgresServer.Database}?sslmode={(clientTls ? "require" : "disable")}";

        ProcessResult result = await ProcessRunner.RunAsync(
            Java()!,
            ["-cp", Driver, Path.Combine(RepositoryRoot.Path, "tests", "PgProxy.EndToEnd.Tests", "Clients", "JdbcLogin.java"), url, user, user == PostgresServer.ScramUser ? PostgresServer.ScramPassword : PostgresServer.Md5Password],
            TimeSpan.FromSeconds(60));

        Assert.True(result.Succeeded, result.ToString());
        string[] columns = result.StandardOutput.Trim().Split('|');
        Assert.True(columns.Length == 2, result.StandardOutput);
        Assert.Equal(user, columns[0]);
        // pgJDBC 42.5 answers SCRAM-SHA-256 alone with 'n' over TLS as well: relayed untouched, the server leg stays TLS.
        Assert.Equal("t", columns[1]);
        Assert.DoesNotContain(proxy.Logs.Lines, line => line.Contains("relayed over a plain-text upstream connection", StringComparison.Ordinal));
        Assert.DoesNotContain(proxy.Logs.Lines, line => line.Contains("ended at the proxy", StringComparison.Ordinal));
    }

    private static readonly string[] JavaPaths = ["/usr/bin/java", "/usr/lib/jvm/default-java/bin/java"];

    private static string? Java() => JavaPaths.FirstOrDefault(File.Exists);
}
