using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Npgsql;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Rules;

/// <summary>Rules on live traffic through the pgproxy command, with psql and Npgsql, in both protocols.</summary>
[Collection(SharedPostgres.Name)]
public sealed partial class RulesRelayTests(PostgresFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private const string Rules = """
            rules:
              - name: no-ddl
                match: {statement: [ddl]}
                refuse: {sqlstate: '42501', message: 'DDL is not allowed through this port'}
              - name: marker
                match: {query: 'pgproxy_marker\((?<word>\w+)\)'}
                rewrite: '''rewritten-${word}''::text'
              - name: tag-tagtest
                match: {application-name: ['/^tagtest/']}
                tag: 'source=tagtest'
                continue: true
              - name: slow-regex
                match: {query: '(a+)+\1b', anywhere: true}
                refuse: {message: 'never: this pattern always times out'}
        """;

    [Fact]
    public async Task A_named_prepared_statement_is_rewritten_once_and_every_execution_sees_it()
    {
        await using ProxyProcess proxy = await StartAsync(Rules);
        await using var connection = new NpgsqlConnection(ConnectionString(proxy, "rules-prepared"));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT pgproxy_marker(alpha) AS v", connection);
        await command.PrepareAsync();
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal("rewritten-alpha", await command.ExecuteScalarAsync());
        }
    }

    [Fact]
    public async Task Lookalikes_in_literals_comments_and_dollar_quotes_are_left_alone()
    {
        await using ProxyProcess proxy = await StartAsync(Rules);
        ProcessResult result = await Psql.RunAsync(Target(proxy), """
            \pset tuples_only on
            SELECT 'pgproxy_marker(beta)' AS literal;
            SELECT $$pgproxy_marker(gamma)$$ AS dollar; -- pgproxy_marker(delta)
            SELECT E'pgproxy_marker(eps)' AS escaped /* pgproxy_marker(zeta) */;
            SELECT pgproxy_marker(real) AS code;

            """);
        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains("pgproxy_marker(beta)", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("pgproxy_marker(gamma)", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("pgproxy_marker(eps)", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("rewritten-real", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_refused_statement_in_a_multi_statement_query_fails_only_where_the_server_would()
    {
        await using ProxyProcess proxy = await StartAsync(Rules);

        // psql -c sends the three statements in one Query: the first runs, the DDL raises 42501, the third is skipped.
        ProcessResult result = await Psql.RunAsync(
            Target(proxy), "", new PsqlOptions { OnErrorStop = false, Arguments = ["-At", "-c", "SELECT 'first-ran'; CREATE TABLE rules_refused_table (n int); SELECT 'third-ran'"] });
        Assert.Contains("DDL is not allowed through this port", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("DO $", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("third-ran", result.StandardOutput, StringComparison.Ordinal);
        await using var direct = new NpgsqlConnection(fixture.Server.ConnectionString(PostgresServer.Superuser));
        await direct.OpenAsync();
        await using var exists = new NpgsqlCommand("SELECT to_regclass('rules_refused_table') IS NULL", direct);
        Assert.Equal(true, await exists.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_pipeline_with_a_refused_statement_in_the_middle_gets_the_refusal_there()
    {
        await using ProxyProcess proxy = await StartAsync(Rules);
        await using var connection = new NpgsqlConnection(ConnectionString(proxy, "rules-pipeline"));
        await connection.OpenAsync();
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("SELECT 1"),
                new NpgsqlBatchCommand("DROP TABLE IF EXISTS rules_pipeline_table"),
                new NpgsqlBatchCommand("SELECT 3"),
            },
        };
        await using NpgsqlDataReader reader = await batch.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(1, reader.GetInt32(0));
        PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => reader.NextResultAsync());
        Assert.Equal("42501", refused.SqlState);
        Assert.Equal("DDL is not allowed through this port", refused.MessageText);

        // The session goes on.
        await reader.DisposeAsync();
        await using var after = new NpgsqlCommand("SELECT 'still here'", connection);
        Assert.Equal("still here", await after.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_tag_reaches_the_server_and_a_catastrophic_regex_is_skipped_at_its_timeout()
    {
        string interceptLog = Path.Combine(Path.GetTempPath(), $"pgproxy-rules-{Guid.NewGuid():N}.log");
        await using ProxyProcess proxy = await StartAsync(Rules, settings: $"  rule-timeout: 50ms\n  intercept-log: {interceptLog}\n");
        await using var connection = new NpgsqlConnection(ConnectionString(proxy, "tagtest-client"));
        await connection.OpenAsync();
        await using var tagged = new NpgsqlCommand("SELECT current_query()", connection);
        Assert.StartsWith("/* source=tagtest */", (string?)await tagged.ExecuteScalarAsync(), StringComparison.Ordinal);

        string text = "SELECT '" + new string('a', 40) + "' AS slow";
        await using var slow = new NpgsqlCommand(text, connection);
        Assert.Equal(new string('a', 40), await slow.ExecuteScalarAsync());
        await Waiting.WaitUntilAsync(
            () => Task.FromResult(File.Exists(interceptLog) && File.ReadAllText(interceptLog).Contains("rule slow-regex skipped", StringComparison.Ordinal)),
            Deadline,
            "the timed-out rule logged in the intercept log");
        File.Delete(interceptLog);
    }

    [Fact]
    public async Task A_reload_reaches_an_open_session_and_a_broken_reload_keeps_the_rules()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Configuration(""));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using var connection = new NpgsqlConnection(ConnectionString(proxy, "rules-reload"));
        await connection.OpenAsync();
        await using var ddl = new NpgsqlCommand("CREATE TEMP TABLE rules_reload_table (n int)", connection);
        await ddl.ExecuteNonQueryAsync();

        await File.WriteAllTextAsync(directory.ConfigFile, Configuration(Rules));
        await proxy.SignalAsync(PosixSignal.SIGHUP);
        await proxy.WaitForOutputAsync(output => output.Contains("generation 2", StringComparison.Ordinal), Deadline, "the reload applied");
        await using var again = new NpgsqlCommand("CREATE TEMP TABLE rules_reload_table2 (n int)", connection);
        Assert.Equal("42501", (await Assert.ThrowsAsync<PostgresException>(() => again.ExecuteNonQueryAsync())).SqlState);

        await File.WriteAllTextAsync(directory.ConfigFile, Configuration(Rules.Replace("statement: [ddl]", "statement: [nonsense]", StringComparison.Ordinal)));
        await proxy.SignalAsync(PosixSignal.SIGHUP);
        // The refusal and the error naming the key are written as separate lines: wait for both.
        await proxy.WaitForOutputAsync(
            output => output.Contains("Reload failed", StringComparison.Ordinal)
                && BrokenKey().IsMatch(output[output.IndexOf("Reload failed", StringComparison.Ordinal)..]),
            Deadline,
            "the broken reload refused, naming the file, line and key");
        Assert.Equal("42501", (await Assert.ThrowsAsync<PostgresException>(() => again.ExecuteNonQueryAsync())).SqlState);
    }

    [Fact]
    public async Task With_watch_config_a_saved_file_reloads_without_a_signal()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Configuration("", "  watch-config: true\n"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using var connection = new NpgsqlConnection(ConnectionString(proxy, "rules-watch"));
        await connection.OpenAsync();

        await File.WriteAllTextAsync(directory.ConfigFile, Configuration(Rules, "  watch-config: true\n"));
        await proxy.WaitForOutputAsync(output => output.Contains("generation 2", StringComparison.Ordinal), Deadline, "the saved file reloaded");
        await using var ddl = new NpgsqlCommand("CREATE TEMP TABLE rules_watch_table (n int)", connection);
        Assert.Equal("42501", (await Assert.ThrowsAsync<PostgresException>(() => ddl.ExecuteNonQueryAsync())).SqlState);
        Assert.Contains("watch-config", proxy.Output, StringComparison.Ordinal);
    }

    private async Task<ProxyProcess> StartAsync(string rules, string settings = "")
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Configuration(rules, settings));
        return await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
    }

    private string Configuration(string rules, string settings = "") => string.Create(CultureInfo.InvariantCulture, $$"""
        settings:
          log-level: info
        {{settings}}
        instances:
          - listen: {name: proxy, host: 127.0.0.1, port: 0}
            redirect: {name: postgresql, host: {{fixture.Server.Host}}, port: {{fixture.Server.Port}}}
        {{rules}}
        """);

    [GeneratedRegex(@"config\.yml:[0-9]+.*rules\[0\]\.match\.statement")]
    private static partial Regex BrokenKey();

    private static PsqlTarget Target(ProxyProcess proxy) => new("127.0.0.1", proxy.PortOf("proxy"), PostgresServer.TrustUser, PostgresServer.Database);

    private static string ConnectionString(ProxyProcess proxy, string applicationName) => proxy.NpgsqlConnectionString(applicationName);
}
