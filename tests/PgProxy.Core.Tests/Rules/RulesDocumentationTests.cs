using System.Net;
using System.Text.RegularExpressions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Masks;
using PgProxy.Core.Rules;
using PgProxy.TestSupport;

namespace PgProxy.Core.Tests.Rules;

/// <summary>
/// The recipes of docs/rules.md do what the page says they do. (That every YAML block of the page loads is
/// <see cref="Configuration.DocumentationExampleTests"/>'s; the test-rules example runs as a command in the
/// end-to-end tests.)
/// </summary>
public sealed partial class RulesDocumentationTests
{
    private static readonly string Page = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs", "rules.md"));

    /// <summary>The rule set of the page's YAML block that defines the rule <paramref name="ruleName"/> first.</summary>
    private static RuleSet RecipeWith(string ruleName)
    {
        string yaml = Blocks("yaml").First(body => body.Contains($"- name: {ruleName}\n", StringComparison.Ordinal));
        ProxyConfig config = ConfigLoader.Parse(yaml, Path.GetTempPath(), "rules.md");
        return RuleSet.Build(config.Instances[0].Rules, config.Settings);
    }

    private static string Block(string firstLine) => Blocks("").Single(body => body.StartsWith(firstLine, StringComparison.Ordinal));

    /// <summary>The bodies of the page's code blocks of one language ("" for none), fences read in pairs from the top.</summary>
    private static IEnumerable<string> Blocks(string language) =>
        CodeBlock().Matches(Page).Where(match => match.Groups["language"].Value == language).Select(match => match.Groups["body"].Value);

    [Fact]
    public void Block_ddl_refuses_ddl_from_the_application_user_only()
    {
        RuleSet rules = RecipeWith("no-ddl-for-app");
        var app = new RuleSubject("app", "shop", null, IPAddress.Loopback);

        Assert.Equal(new RuleRefusal("42501", "DDL is not allowed through this port"), rules.Evaluate("ALTER TABLE orders ADD COLUMN x int", app).Refusal);
        Assert.True(rules.Evaluate("TRUNCATE orders", app).RefusesWholeMessage);
        Assert.True(rules.Evaluate("UPDATE orders SET x = 1", app).IsUnchanged);
        Assert.True(rules.Evaluate("ALTER TABLE orders ADD COLUMN x int", app with { User = "migrations" }).IsUnchanged);
    }

    [Fact]
    public void The_dry_run_logs_what_the_documented_log_line_says_and_changes_nothing()
    {
        RuleSet rules = RecipeWith("no-full-export");
        var log = new ListLogger();

        RuleDecision decision = rules.Evaluate("DROP TABLE orders_2019", new RuleSubject("app", "shop", null, IPAddress.Loopback), QueryProtocol.Simple, log, 12);

        Assert.True(decision.IsUnchanged);
        Assert.Equal(Block("Session 12: query matched log-only rule").TrimEnd('\n'), Assert.Single(log.Messages));
        Assert.True(rules.Evaluate("COPY public.customers TO STDOUT", RuleSets.App).IsUnchanged);
        Assert.Equal(RuleHitKind.LogOnly, Assert.Single(rules.Evaluate("COPY customers TO STDOUT", RuleSets.App).Hits).Kind);
    }

    [Fact]
    public void The_hll_rewrite_gives_the_documented_text()
    {
        RuleSet rules = RecipeWith("hll-visitors");
        var tableau = new RuleSubject("bi", "crm", "Tableau 2024.1", IPAddress.Loopback);

        Assert.Equal(
            "SELECT hll_cardinality(hll_union_agg(\"sessions\".\"visitor_hll\"))::bigint FROM \"sessions\"",
            rules.Evaluate("SELECT COUNT(DISTINCT \"sessions\".\"visitor\") FROM \"sessions\"", tableau).Text);
        Assert.Contains("`SELECT COUNT(DISTINCT \"sessions\".\"visitor\") FROM \"sessions\"` goes to the server as\n`SELECT hll_cardinality(hll_union_agg(\"sessions\".\"visitor_hll\"))::bigint FROM \"sessions\"`", Page, StringComparison.Ordinal);
        Assert.True(rules.Evaluate("SELECT 'COUNT(DISTINCT \"sessions\".\"visitor\")'", tableau).IsUnchanged);
    }

    [Fact]
    public void Tagging_by_application_tags_and_goes_on()
    {
        RuleSet rules = RecipeWith("tag-metabase");
        var tableau = new RuleSubject("bi", "crm", "Tableau 2024.1", IPAddress.Loopback);

        Assert.Equal("/* source=tableau */ SELECT 1", rules.Evaluate("SELECT 1", tableau).Text);
        Assert.Equal("/* source=metabase */ DELETE FROM orders", rules.Evaluate("DELETE FROM orders", tableau with { ApplicationName = "Metabase" }).Text);
        Assert.Equal(["tag-metabase", "audit-orders"], rules.Evaluate("DELETE FROM orders", tableau with { ApplicationName = "Metabase" }).Hits.Select(hit => hit.Rule.Name));
    }

    [Fact]
    public void Masking_for_a_role_refuses_the_documented_computation_for_analysts_and_not_for_the_dpo()
    {
        string yaml = Blocks("yaml").First(body => body.Contains("- name: analyst-emails\n", StringComparison.Ordinal));
        ProxyConfig config = ConfigLoader.Parse(yaml, Path.GetTempPath(), "rules.md");
        MaskSet masks = MaskSet.Build(config.Instances[0].Masks, config.Settings);
        var analyst = new RuleSubject("analyst", "crm", "psql", IPAddress.Loopback);

        MaskStatementRefusal? refusal = masks.CheckWithoutCatalog("SELECT upper(email) FROM crm.customers", analyst);

        Assert.NotNull(refusal);
        Assert.Contains($"ERROR:  {refusal.Message}\n", Page, StringComparison.Ordinal);
        Assert.Null(masks.CheckWithoutCatalog("SELECT upper(email) FROM crm.customers", analyst with { User = "dpo" }));
        Assert.Null(masks.CheckWithoutCatalog("SELECT id, email AS contact, card FROM crm.customers ORDER BY id", analyst));
    }

    [GeneratedRegex("```(?<language>[a-z]*)\\n(?<body>.*?)```", RegexOptions.Singleline)]
    private static partial Regex CodeBlock();
}
