using System.Globalization;
using System.Text;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.PsqlClient;

/// <summary>psql (libpq) as a process through the proxy: a real client that is not our own code.</summary>
[Collection(SharedPostgres.Name)]
public sealed class PsqlTests(PostgresFixture fixture)
{
    private static readonly PsqlOptions Bare = new() { Arguments = ["-A", "-t"] };

    [Theory]
    [InlineData(PostgresServer.Md5User, PostgresServer.Md5Password)]
    [InlineData(PostgresServer.ScramUser, PostgresServer.ScramPassword)]
    [InlineData(PostgresServer.CleartextUser, PostgresServer.CleartextPassword)]
    public async Task Password_users_log_in_and_run_queries(string user, string password)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(user, password),
            "SELECT current_user;\nSELECT count(*) FROM generate_series(1, 1000);\n",
            Bare);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal([user, "1000"], Lines(result.StandardOutput));
    }

    [Fact]
    public async Task A_wrong_password_fails_with_psqls_authentication_error()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.ScramUser, "not-the-password"), "SELECT 1;\n", Bare);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("password authentication failed", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Copy_from_a_file_and_to_a_file_round_trips_10000_lines()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        string directory = Directory.CreateTempSubdirectory("pgproxy-psql-copy-").FullName;
        try
        {
            string input = Path.Combine(directory, "in.tsv");
            string output = Path.Combine(directory, "out.tsv");
            var lines = new StringBuilder();
            for (int i = 1; i <= 10_000; i++)
            {
                lines.Append(CultureInfo.InvariantCulture, $"{i}\tline number {i} with a tab\\tand émoji ✓\n");
            }

            await File.WriteAllTextAsync(input, lines.ToString());
            string table = "copy_" + Guid.NewGuid().ToString("N");
            string script = $"""
                CREATE TEMP TABLE {table} (id int PRIMARY KEY, text text);
                \copy {table} FROM '{input}'
                SELECT count(*), sum(id) FROM {table};
                \copy (SELECT * FROM {table} ORDER BY id) TO '{output}'
                """;

            ProcessResult result = await Infrastructure.Psql.RunAsync(proxy.PsqlTarget(PostgresServer.TrustUser), script + "\n", Bare);

            Assert.True(result.Succeeded, result.ToString());
            Assert.Contains("10000|50005000", Lines(result.StandardOutput));
            Assert.Equal(await File.ReadAllTextAsync(input), await File.ReadAllTextAsync(output));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task A_multi_statement_simple_query_prints_every_result()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.TrustUser),
            string.Empty,
            Bare with { Arguments = ["-A", "-t", "-c", "SELECT 1; SELECT 2; SELECT 'three'"] });

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(["1", "2", "three"], Lines(result.StandardOutput));
    }

    [Fact]
    public async Task An_error_mid_transaction_is_reported_then_ROLLBACK_and_later_statements_work()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        const string Script = """
            CREATE TEMP TABLE tx_test (id int);
            BEGIN;
            INSERT INTO tx_test VALUES (1);
            SELECT 1 / 0;
            INSERT INTO tx_test VALUES (2);
            ROLLBACK;
            SELECT 'after rollback', count(*) FROM tx_test;

            """;

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.TrustUser), Script, Bare with { OnErrorStop = false });

        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains("division by zero", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("current transaction is aborted", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("after rollback|0", Lines(result.StandardOutput));
        Assert.Contains("ROLLBACK", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sslmode_prefer_falls_back_to_plain_text()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.TrustUser),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n",
            Bare with { Environment = new Dictionary<string, string?> { ["PGSSLMODE"] = "prefer" } });

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(["f"], Lines(result.StandardOutput));
    }

    [Fact]
    public async Task Sslmode_require_fails_because_the_proxy_does_not_offer_TLS()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);

        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.TrustUser),
            "SELECT 1;\n",
            Bare with { Environment = new Dictionary<string, string?> { ["PGSSLMODE"] = "require" } });

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("server does not support SSL", result.StandardError, StringComparison.Ordinal);
    }

    private static string[] Lines(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
