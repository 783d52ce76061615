using Npgsql;
using PgProxy.Core.Statistics;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Statistics;

/// <summary>
/// Per-query statistics against a known workload through real clients: calls, rows and errors must be exact, in both
/// protocols, and a multi-statement Query is counted statement by statement.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class QueryStatisticsTests(PostgresFixture fixture)
{
    [Fact]
    public async Task A_named_prepared_statement_executed_many_times_has_every_call_and_the_exact_row_sum()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT n FROM generate_series(1, @count) AS n", connection);
        command.Parameters.Add(new NpgsqlParameter<int>("count", 0));
        await command.PrepareAsync();
        for (int count = 1; count <= 25; count++)
        {
            command.Parameters[0].Value = count;
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
            }
        }

        (QueryKey key, QueryEntrySnapshot entry) = Single(proxy, "generate_series");
        Assert.Equal(25, entry.Calls);
        Assert.Equal(25 * 26 / 2, entry.Rows);
        Assert.Equal(0, entry.Errors);
        Assert.Equal(PostgresServer.TrustUser, key.User);
        Assert.Equal(PostgresServer.Database, key.Database);
        Assert.Equal("proxy", key.Instance);
        Assert.True(entry.MinMicroseconds > 0 && entry.MinMicroseconds <= entry.MeanMicroseconds && entry.MeanMicroseconds <= entry.MaxMicroseconds);
        Assert.True(entry.P50Microseconds <= entry.P99Microseconds);
    }

    [Fact]
    public async Task A_multi_statement_query_from_psql_is_counted_per_statement_and_keeps_no_literal()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        PsqlTarget target = proxy.PsqlTarget(PostgresServer.TrustUser);
        for (int i = 0; i < 3; i++)
        {
            ProcessResult result = await Psql.RunAsync(target, "SELECT 'secret-41' AS a; SELECT n FROM generate_series(1, 4) AS n;\n");
            Assert.Equal(0, result.ExitCode);
        }

        (_, QueryEntrySnapshot literal) = Single(proxy, "AS a");
        Assert.Equal(3, literal.Calls);
        Assert.Equal(3, literal.Rows);
        Assert.DoesNotContain("secret", literal.NormalizedText, StringComparison.Ordinal);
        (_, QueryEntrySnapshot series) = Single(proxy, "generate_series");
        Assert.Equal(3, series.Calls);
        Assert.Equal(12, series.Rows);
    }

    [Fact]
    public async Task After_an_error_the_statements_the_server_skipped_are_not_counted()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);

        // Simple protocol: the statement after the failing one never runs.
        PsqlTarget target = proxy.PsqlTarget(PostgresServer.TrustUser);
        ProcessResult psql = await Psql.RunAsync(target, "SELECT abs(11); SELECT 1 / 0; SELECT sign(12);\n");
        Assert.Contains("division by zero", psql.StandardError, StringComparison.Ordinal);

        // Extended protocol: a pipelined batch with a failing statement in the middle.
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("SELECT ceil(21)"),
                new NpgsqlBatchCommand("SELECT 1 / (0 * 2)"),
                new NpgsqlBatchCommand("SELECT floor(23)"),
            },
        };
        await Assert.ThrowsAsync<PostgresException>(() => batch.ExecuteNonQueryAsync());

        // Column aliases do not change a fingerprint, so each statement here has its own shape.
        Assert.Equal((1, 0), Counts(Single(proxy, "abs(").Entry));
        Assert.Equal((1, 1), Counts(Single(proxy, "SELECT $1 / $2").Entry));
        Assert.Equal((1, 0), Counts(Single(proxy, "ceil(").Entry));
        Assert.Equal((1, 1), Counts(Single(proxy, "($2 * $3)").Entry));
        IReadOnlyList<KeyValuePair<QueryKey, QueryEntrySnapshot>> all = proxy.Server.Configuration.Statistics.Snapshot();
        Assert.DoesNotContain(all, pair => pair.Value.NormalizedText.Contains("sign(", StringComparison.Ordinal));
        Assert.DoesNotContain(all, pair => pair.Value.NormalizedText.Contains("floor(", StringComparison.Ordinal));
    }

    private static (long Calls, long Errors) Counts(QueryEntrySnapshot entry) => (entry.Calls, entry.Errors);

    private static (QueryKey Key, QueryEntrySnapshot Entry) Single(ProxyHarness proxy, string textPart)
    {
        KeyValuePair<QueryKey, QueryEntrySnapshot> match = Assert.Single(
            proxy.Server.Configuration.Statistics.Snapshot(),
            pair => pair.Value.NormalizedText.Contains(textPart, StringComparison.Ordinal) && pair.Key.User == PostgresServer.TrustUser);
        return (match.Key, match.Value);
    }
}
