using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.Sql;
using PgProxy.TestSupport;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>
/// <c>pgproxy test-rules</c> and <c>pgproxy fingerprint</c> as users run them, against golden files in Host/TestRules
/// (their config.yml and queries.sql, and the output each run must print). No server is involved.
/// </summary>
public sealed class RuleCommandTests
{
    private static readonly string Fixtures = Path.Combine(RepositoryRoot.Path, "tests", "PgProxy.EndToEnd.Tests", "Host", "TestRules");

    private static readonly string Config = Path.Combine(Fixtures, "config.yml");

    private static readonly string Queries = Path.Combine(Fixtures, "queries.sql");

    private static readonly string[] AppFromTableau =
        ["--user", "app", "--application-name", "Tableau Desktop 2024.1", "--client", "10.1.2.3"];

    private static string Golden(string name) => File.ReadAllText(Path.Combine(Fixtures, name));

    [Fact]
    public async Task Test_rules_prints_per_statement_the_rules_that_matched_the_text_after_them_and_the_refusals()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync(["test-rules", "--config", Config, .. AppFromTableau, Queries]);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(Golden("app-tableau.txt"), result.StandardOutput);
    }

    [Fact]
    public async Task Test_rules_in_json_for_another_session_and_the_extended_protocol()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync(
            "test-rules", "--config", Config, "--user", "analyst", "--client", "192.168.1.5", "--protocol", "extended", "--format", "json", Queries);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(Golden("analyst-extended.json"), result.StandardOutput);
        using var document = System.Text.Json.JsonDocument.Parse(result.StandardOutput);
        Assert.Equal(6, document.RootElement.GetProperty("statements").GetArrayLength());
    }

    [Fact]
    public async Task Test_rules_checks_masks_computed_and_copy_refusals_from_the_parse()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync("test-rules", "--config", Path.Combine(Fixtures, "masks.yml"), "--user", "analyst", Path.Combine(Fixtures, "masks.sql"));

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(Golden("masks-analyst.txt"), result.StandardOutput);
    }

    [Fact]
    public async Task Test_rules_in_json_shows_a_user_exempt_from_one_mask_still_under_the_others()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync(
            "test-rules", "--config", Path.Combine(Fixtures, "masks.yml"), "--user", "dpo", "--format", "json", Path.Combine(Fixtures, "masks.sql"));

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(Golden("masks-dpo.json"), result.StandardOutput);
        using var document = System.Text.Json.JsonDocument.Parse(result.StandardOutput);
        List<string?> refusedBy = [.. document.RootElement.GetProperty("statements").EnumerateArray()
            .Select(statement => statement.GetProperty("masks").EnumerateArray().Select(mask => mask.GetProperty("name").GetString()).FirstOrDefault())];
        Assert.Equal(new List<string?> { null, null, "cards", "phones", "phones", "phones" }, refusedBy);
    }

    [Fact]
    public async Task Test_rules_of_another_instance_read_from_standard_input()
    {
        ProcessResult result = await ProcessRunner.RunAsync(
            "dotnet", [ProxyProcess.AssemblyPath, "test-rules", "--config", Config, "--instance", "reports", "-"], TimeSpan.FromSeconds(60), standardInput: File.ReadAllText(Queries));

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(Golden("reports.txt"), result.StandardOutput);
    }

    [Fact]
    public async Task Expect_exits_0_when_the_output_is_the_golden_file()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync(["test-rules", "--config", Config, .. AppFromTableau, "--expect", Path.Combine(Fixtures, "app-tableau.txt"), Queries]);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal($"test-rules: output matches {Path.Combine(Fixtures, "app-tableau.txt")}\n", result.StandardOutput);
    }

    [Fact]
    public async Task Expect_exits_1_with_a_diff_when_the_output_differs()
    {
        // Without --user app, the DDL is no longer refused: the golden file of the app session no longer holds.
        string golden = Path.Combine(Fixtures, "app-tableau.txt");
        ProcessResult result = await ProxyProcess.RunToEndAsync(
            "test-rules", "--config", Config, "--user", "other", "--application-name", "Tableau Desktop 2024.1", "--client", "10.1.2.3", "--expect", golden, Queries);

        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"pgproxy: test-rules output differs from {golden}\n", result.StandardError);
        string[] diff =
        [
            $"--- {golden}",
            "+++ test-rules",
            "@@ -1 +1 @@",
            " statement 1 (line 2): CREATE TABLE orders_copy (LIKE orders)",
            "-  rule no-ddl-for-app (enforce): refuse",
            "-  refused: 42501 DDL is not allowed through this port",
            "+  rule tag-tableau (enforce): tag",
            "+  after: /* source=tableau */ CREATE TABLE orders_copy (LIKE orders)",
            " ",
            " statement 2 (line 3): SELECT COUNT(DISTINCT \"sessions\".\"visitor\") AS visitors",
            "",
        ];
        Assert.Equal(string.Join('\n', diff), result.StandardOutput);
    }

    [Fact]
    public async Task Test_rules_names_an_unknown_instance_and_a_bad_client_address()
    {
        ProcessResult instance = await ProxyProcess.RunToEndAsync("test-rules", "--config", Config, "--instance", "nope", Queries);
        ProcessResult client = await ProxyProcess.RunToEndAsync("test-rules", "--config", Config, "--client", "10.1.2", Queries);

        Assert.Equal(1, instance.ExitCode);
        Assert.Equal($"pgproxy: no instance \"nope\" in {Config}; its instances are \"shop\", \"reports\"\n", instance.StandardError);
        Assert.Equal(1, client.ExitCode);
        Assert.Contains("--client: '10.1.2' is not an IP address", client.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Test_rules_reports_a_broken_rule_with_its_line()
    {
        using ConfigDirectory directory = ConfigDirectory.Create("""
            instances:
              - listen: {name: proxy, host: 127.0.0.1, port: 6432}
                redirect: {name: db, host: 127.0.0.1, port: 5432}
                rules:
                  - {name: r, match: {query: '('}, log: true}
            """);

        ProcessResult result = await ProxyProcess.RunToEndAsync("test-rules", "--config", directory.ConfigFile, Queries);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("config.yml:5:34: instances[0].rules[0].match.query: invalid regular expression: Invalid pattern '(' at offset 1. Not enough )'s.", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Fingerprint_prints_the_fingerprint_and_normalized_text_of_each_statement()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync("fingerprint", "SELECT * FROM orders WHERE id = 42; select 'x'");

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(
            $"""
            fingerprint: {PostgresParser.Fingerprint("SELECT * FROM orders WHERE id = 1").Text}
            normalized: SELECT * FROM orders WHERE id = $1

            fingerprint: {PostgresParser.Fingerprint("SELECT 'y'").Text}
            normalized: select $1

            """,
            result.StandardOutput);
    }

    [Fact]
    public async Task Fingerprint_gives_the_value_a_fingerprint_rule_matches()
    {
        ProcessResult printed = await ProxyProcess.RunToEndAsync("fingerprint", "DELETE FROM orders WHERE id = 1");
        string fingerprint = printed.StandardOutput.Split('\n')[0]["fingerprint: ".Length..];
        using ConfigDirectory directory = ConfigDirectory.Create($$$"""
            instances:
              - listen: {name: proxy, host: 127.0.0.1, port: 6432}
                redirect: {name: db, host: 127.0.0.1, port: 5432}
                rules:
                  - {name: shape, match: {fingerprint: {{{fingerprint}}}}, refuse: {message: 'not this one'}}
            """);
        ProcessResult tested = await ProcessRunner.RunAsync(
            "dotnet", [ProxyProcess.AssemblyPath, "test-rules", "--config", directory.ConfigFile], TimeSpan.FromSeconds(60), standardInput: "delete from orders where id = 99; DELETE FROM orders WHERE id > 1");

        Assert.True(tested.Succeeded, tested.ToString());
        Assert.Equal(
            """
            statement 1 (line 1): delete from orders where id = 99
              rule shape (enforce): refuse
              refused: 42501 not this one

            statement 2 (line 1): DELETE FROM orders WHERE id > 1
              no rule matched
              after: unchanged

            """,
            tested.StandardOutput);
    }

    [Fact]
    public async Task Fingerprint_of_sql_the_parser_rejects_says_why()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync("fingerprint", "SELEC 1");

        Assert.Equal(1, result.ExitCode);
        Assert.Equal("pgproxy: cannot fingerprint: syntax error at or near \"SELEC\"\n", result.StandardError);
    }

    [Fact]
    public async Task Check_lists_each_instance_s_rules_with_their_line_mode_and_actions()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "--config", Config);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains("  rule \"no-ddl-for-app\" (config line 6, enforce): refuse with 42501\n", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("  rule \"hll-visitors\" (config line 9, log-only): rewrite\n", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("  rule \"tag-tableau\" (config line 13, enforce): tag /* source=tableau */, continue\n", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("  rule \"read-only\" (config line 29, enforce): refuse with 25006\n", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_the_parser_library_check_refuses_an_instance_with_rules()
    {
        ProcessResult result = await ProcessRunner.RunAsync(
            "dotnet",
            [ProxyProcess.AssemblyPath, "check", "--config", Config],
            TimeSpan.FromSeconds(60),
            environment: new Dictionary<string, string?> { ["PGPROXY_LIBPG_QUERY"] = "/nonexistent/libpg_query.so" });

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("pgproxy: instance \"shop\" has rules or masks, which need the PostgreSQL parser: the PostgreSQL parser library libpg_query could not be loaded from /nonexistent/libpg_query.so", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("pgproxy: instance \"reports\" has rules", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_lists_both_commands()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync("--help");

        Assert.Matches(@"(?m)^\s+test-rules\s+\S", result.StandardOutput);
        Assert.Matches(@"(?m)^\s+fingerprint <SQL>\s+\S", result.StandardOutput);
    }
}
