using System.Text.Json;
using Npgsql;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Statistics;

/// <summary>The query log through the pgproxy command: one parseable JSON line per executed statement, no values unless asked.</summary>
[Collection(SharedPostgres.Name)]
public sealed class QueryLogTests(PostgresFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Every_statement_of_a_known_workload_has_one_json_line_without_its_values()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server, "query-log:\n  file: logs/queries.log\n"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        var target = new PsqlTarget("127.0.0.1", proxy.PortOf("proxy"), PostgresServer.TrustUser, PostgresServer.Database);
        ProcessResult psql = await Psql.RunAsync(target, "SELECT 'secret-7' AS querylog_literal; SELECT 1 / 0 AS querylog_failing;\n");
        Assert.Contains("division by zero", psql.StandardError, StringComparison.Ordinal);
        await using (var connection = new NpgsqlConnection(ConnectionString(proxy, "querylog-npgsql")))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT n FROM generate_series(1, @count) AS n", connection);
            command.Parameters.Add(new NpgsqlParameter<int>("count", 424242));
            for (int i = 0; i < 3; i++)
            {
                await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                }
            }
        }

        string file = Path.Combine(directory.Path, "logs", "queries.log");
        List<JsonElement> lines = await WaitForLinesAsync(file, lines => lines.Count(l => Query(l).Contains("generate_series", StringComparison.Ordinal)) == 3);

        JsonElement literal = Assert.Single(lines, l => Query(l).Contains("querylog_literal", StringComparison.Ordinal));
        Assert.Equal(1, literal.GetProperty("rows").GetInt64());
        Assert.Equal(JsonValueKind.Null, literal.GetProperty("sqlstate").ValueKind);
        Assert.Equal(PostgresServer.TrustUser, literal.GetProperty("user").GetString());
        Assert.Equal("proxy", literal.GetProperty("instance").GetString());
        Assert.Matches("^[0-9a-f]{16}$", literal.GetProperty("fingerprint").GetString());
        Assert.True(literal.GetProperty("duration_ms").GetDouble() >= 0);
        JsonElement failing = Assert.Single(lines, l => Query(l).Contains("querylog_failing", StringComparison.Ordinal));
        Assert.Equal("22012", failing.GetProperty("sqlstate").GetString());
        Assert.All(lines.Where(l => Query(l).Contains("generate_series", StringComparison.Ordinal)), l =>
        {
            Assert.Equal(424242, l.GetProperty("rows").GetInt64());
            Assert.Equal("querylog-npgsql", l.GetProperty("application_name").GetString());
        });
        string text = await File.ReadAllTextAsync(file);
        Assert.DoesNotContain("secret-7", text, StringComparison.Ordinal);
        Assert.DoesNotContain("424242\"", text.Replace("\"rows\":424242", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.DoesNotContain("\"parameters\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_parameters_true_the_line_has_the_text_and_the_bound_values()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server, "query-log:\n  file: queries.log\n  parameters: true\n"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using (var connection = new NpgsqlConnection(ConnectionString(proxy, "querylog-values")))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT @word::text AS querylog_value", connection);
            command.Parameters.Add(new NpgsqlParameter<string>("word", "swordfish"));
            Assert.Equal("swordfish", await command.ExecuteScalarAsync());

            // Two simple-protocol queries of one shape: each line has its own text, not the first one's.
            foreach (string word in new[] { "first", "second" })
            {
                await using var inline = new NpgsqlCommand($"SELECT 'inline-{word}'::text AS querylog_inline", connection);
                Assert.Equal($"inline-{word}", await inline.ExecuteScalarAsync());
            }
        }

        List<JsonElement> lines = await WaitForLinesAsync(
            Path.Combine(directory.Path, "queries.log"),
            lines => lines.Any(l => Query(l).Contains("querylog_value", StringComparison.Ordinal)) && lines.Count(l => Query(l).Contains("querylog_inline", StringComparison.Ordinal)) == 2);
        JsonElement line = Assert.Single(lines, l => Query(l).Contains("querylog_value", StringComparison.Ordinal));
        Assert.Equal(["swordfish"], line.GetProperty("parameters").EnumerateArray().Select(value => value.GetString()));
        Assert.Equal(
            ["SELECT 'inline-first'::text AS querylog_inline", "SELECT 'inline-second'::text AS querylog_inline"],
            lines.Where(l => Query(l).Contains("querylog_inline", StringComparison.Ordinal)).Select(Query));
    }

    private static string Query(JsonElement line) => line.GetProperty("query").GetString() ?? "";

    private static string ConnectionString(ProxyProcess proxy, string applicationName) => proxy.NpgsqlConnectionString(applicationName);

    private static async Task<List<JsonElement>> WaitForLinesAsync(string file, Func<List<JsonElement>, bool> done)
    {
        List<JsonElement> lines = [];
        await Waiting.WaitUntilAsync(
            async () =>
            {
                if (!File.Exists(file))
                {
                    return false;
                }

                string[] text = await File.ReadAllLinesAsync(file);
                lines = [.. text.Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.Clone())];
                return done(lines);
            },
            Deadline,
            $"the query log {file} has the workload's lines");
        return lines;
    }
}
