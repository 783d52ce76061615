using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;
using PgProxy.Core.Rules;

namespace PgProxy.Core.Tests.Rules;

/// <summary>Every action, the order rules run in, continue, log-only both ways, and multi-statement messages.</summary>
public sealed class RuleActionTests
{
    private static readonly string NoDdl = RefusalStatements.RaiseError("42501", "no DDL here");

    [Fact]
    public void Refuse_replaces_the_statement_by_one_that_raises_the_refusal()
    {
        RuleSet rules = RuleSets.Build("- {name: no-ddl, match: {statement: [ddl]}, refuse: {sqlstate: '42501', message: 'no DDL here'}}");

        RuleDecision decision = rules.Evaluate("DROP TABLE orders");

        Assert.Equal(RuleOutcome.Refused, decision.Outcome);
        Assert.Equal(NoDdl, decision.Text);
        Assert.Equal(new RuleRefusal("42501", "no DDL here"), decision.Refusal);
        Assert.True(decision.RefusesWholeMessage);
        RuleHit hit = Assert.Single(decision.Hits);
        Assert.Equal(("no-ddl", RuleHitKind.Applied, 0, "DROP TABLE orders", NoDdl), (hit.Rule.Name, hit.Kind, hit.Statement, hit.Before, hit.After));
    }

    [Fact]
    public void Rewrite_substitutes_numbered_and_named_groups_and_dollar_dollar_in_every_match()
    {
        RuleSet rules = RuleSets.Build("""
            - name: hll
              match: {query: 'COUNT\(DISTINCT "(?<t>\w+)"\."(\w+)"\)'}
              rewrite: 'hll_cardinality(hll_union_agg("${t}"."$1_hll"))::bigint /* $$ */'
            """);

        RuleDecision decision = rules.Evaluate("SELECT COUNT(DISTINCT \"s\".\"visitor\"), COUNT(DISTINCT \"s\".\"page\") FROM s");

        Assert.Equal(RuleOutcome.Rewritten, decision.Outcome);
        Assert.Equal(
            "SELECT hll_cardinality(hll_union_agg(\"s\".\"visitor_hll\"))::bigint /* $ */, hll_cardinality(hll_union_agg(\"s\".\"page_hll\"))::bigint /* $ */ FROM s",
            decision.Text);
        Assert.Null(decision.Refusal);
    }

    [Fact]
    public void Rewrite_can_delete_what_it_matches() =>
        Assert.Equal("SELECT a FROM t", RuleSets.Build("- {name: r, match: {query: ' /\\*\\+[^*]*\\*/'}, rewrite: ''}").Result("SELECT a /*+ SeqScan(t) */ FROM t"));

    [Fact]
    public void Tag_prepends_a_comment_to_the_statement()
    {
        RuleSet rules = RuleSets.Build("- {name: tag-psql, match: {application-name: [psql]}, tag: 'source=psql app=\"x\"'}");

        Assert.Equal("/* source=psql app=\"x\" */ SELECT 1", rules.Result("SELECT 1"));
        Assert.Equal("SELECT 1", rules.Result("SELECT 1", RuleSets.App with { ApplicationName = "other" }));
    }

    [Fact]
    public void Log_only_logs_and_changes_nothing()
    {
        RuleSet rules = RuleSets.Build("- {name: audit, match: {tables: [orders], statement: [update, delete]}, log: true}");
        var log = new ListLogger();

        RuleDecision decision = rules.Evaluate("DELETE FROM orders WHERE id = 1", log: log);

        Assert.Equal(RuleOutcome.Unchanged, decision.Outcome);
        Assert.Null(decision.Text);
        Assert.Equal(RuleHitKind.Applied, Assert.Single(decision.Hits).Kind);
        var entry = Assert.Single(log.Entries);
        Assert.Equal((512, "Session 7: query matched rule audit: DELETE FROM orders WHERE id = 1"), (entry.Id.Id, entry.Message));
    }

    [Fact]
    public void The_first_rule_that_changes_a_statement_ends_the_list()
    {
        RuleSet rules = RuleSets.Build("""
            - {name: first, match: {query: 'a'}, rewrite: 'b'}
            - {name: second, match: {}, tag: never}
            """);

        RuleDecision decision = rules.Evaluate("SELECT a");

        Assert.Equal("SELECT b", decision.Text);
        Assert.Equal(["first"], decision.Hits.Select(hit => hit.Rule.Name));
    }

    [Fact]
    public void A_rule_that_only_logs_does_not_end_the_list()
    {
        RuleSet rules = RuleSets.Build("""
            - {name: audit, match: {}, log: true}
            - {name: tag, match: {}, tag: t}
            """);

        Assert.Equal("/* t */ SELECT 1", rules.Result("SELECT 1"));
    }

    [Fact]
    public void Continue_lets_later_rules_see_the_changed_text()
    {
        RuleSet rules = RuleSets.Build("""
            - {name: one, match: {query: 'old_name'}, rewrite: new_name, continue: true}
            - {name: two, match: {tables: [new_name]}, tag: renamed, continue: true}
            - {name: three, match: {query: 'old_name'}, tag: never}
            - {name: four, match: {query: 'new_name'}, rewrite: final}
            - {name: five, match: {}, tag: never}
            """);

        RuleDecision decision = rules.Evaluate("SELECT * FROM old_name");

        Assert.Equal("/* renamed */ SELECT * FROM final", decision.Text);
        Assert.Equal(["one", "two", "four"], decision.Hits.Select(hit => hit.Rule.Name));
        Assert.Equal(
            [("SELECT * FROM old_name", "SELECT * FROM new_name"), ("SELECT * FROM new_name", "/* renamed */ SELECT * FROM new_name"), ("/* renamed */ SELECT * FROM new_name", "/* renamed */ SELECT * FROM final")],
            decision.Hits.Select(hit => (hit.Before, hit.After)));
    }

    [Fact]
    public void A_refusal_ends_the_list_whatever_comes_after()
    {
        RuleSet rules = RuleSets.Build("""
            - {name: tag, match: {}, tag: t, continue: true}
            - {name: no-drop, match: {query: DROP}, refuse: {message: 'no DDL here'}}
            - {name: audit, match: {}, log: true}
            """);

        RuleDecision decision = rules.Evaluate("DROP TABLE t");

        Assert.Equal(NoDdl, decision.Text);
        Assert.Equal(["tag", "no-drop"], decision.Hits.Select(hit => hit.Rule.Name));
    }

    [Fact]
    public void A_log_only_rule_changes_nothing_does_not_end_the_list_and_logs_what_it_would_produce()
    {
        RuleSet rules = RuleSets.Build("""
            - name: hll
              match: {query: 'COUNT\(DISTINCT (\w+)\)'}
              rewrite: 'hll_cardinality(hll_union_agg($1_hll))'
              mode: log-only
            - {name: no-drop, match: {query: DROP}, refuse: {}, mode: log-only}
            - {name: tag, match: {}, tag: t}
            """);
        var log = new ListLogger();

        RuleDecision decision = rules.Evaluate("SELECT COUNT(DISTINCT v) FROM s", log: log);

        Assert.Equal("/* t */ SELECT COUNT(DISTINCT v) FROM s", decision.Text);
        RuleHit dryRun = decision.Hits[0];
        Assert.Equal((RuleHitKind.LogOnly, "SELECT hll_cardinality(hll_union_agg(v_hll)) FROM s"), (dryRun.Kind, dryRun.After));
        Assert.True(dryRun.IsLogOnly);
        Assert.Equal(
            "Session 7: query matched log-only rule hll, which would rewrite it; it goes on unchanged\n  before: SELECT COUNT(DISTINCT v) FROM s\n  after:  SELECT hll_cardinality(hll_union_agg(v_hll)) FROM s",
            log.Messages[0]);

        RuleDecision refusal = rules.Evaluate("DROP TABLE s", log: log);

        Assert.Equal(RuleOutcome.Rewritten, refusal.Outcome);
        Assert.Equal("/* t */ DROP TABLE s", refusal.Text);
        Assert.Equal(RuleHitKind.LogOnly, refusal.Hits[0].Kind);
        Assert.Equal(new RuleRefusal("42501", "refused by PgProxy rule \"no-drop\""), refusal.Hits[0].Refusal);
        Assert.Contains(log.Messages, message => message.StartsWith("Session 7: query matched log-only rule no-drop, which would refuse it with 42501 refused by PgProxy rule \"no-drop\"", StringComparison.Ordinal));
    }

    [Fact]
    public void Settings_rules_mode_log_only_makes_every_rule_log_only()
    {
        RuleSet rules = RuleSets.Build("""
            - {name: no-ddl, match: {statement: [ddl]}, refuse: {}}
            - {name: tag, match: {}, tag: t}
            """, "rules-mode: log-only");

        RuleDecision decision = rules.Evaluate("DROP TABLE t");

        Assert.Equal(RuleOutcome.Unchanged, decision.Outcome);
        Assert.All(rules.Rules, rule => Assert.Equal(RuleMode.LogOnly, rule.Mode));
        Assert.Equal([("no-ddl", RuleHitKind.LogOnly), ("tag", RuleHitKind.LogOnly)], decision.Hits.Select(hit => (hit.Rule.Name, hit.Kind)));
        Assert.Equal(1, rules.Rules[0].Counters.LogOnlyHits);
        Assert.Equal(0, rules.Rules[0].Counters.Refusals);
    }

    [Fact]
    public void A_multi_statement_query_is_matched_statement_by_statement_and_the_rest_is_kept_byte_for_byte()
    {
        RuleSet rules = RuleSets.Build("""
            - {name: no-ddl, match: {statement: [ddl]}, refuse: {message: 'no DDL here'}}
            - {name: rename, match: {query: 'old_t'}, rewrite: new_t}
            """);
        const string sql = "SELECT 1 FROM old_t;\n  /* keep */ DROP TABLE x ;SELECT ';' -- old_t\n;  SELECT 2";

        RuleDecision decision = rules.Evaluate(sql);

        Assert.Equal(RuleOutcome.Refused, decision.Outcome);
        Assert.False(decision.RefusesWholeMessage);
        Assert.Equal($"SELECT 1 FROM new_t;\n  /* keep */ {NoDdl} ;SELECT ';' -- old_t\n;  SELECT 2", decision.Text);
        Assert.Equal([(0, "rename"), (1, "no-ddl")], decision.Hits.Select(hit => (hit.Statement, hit.Rule.Name)));
    }

    [Fact]
    public void Every_statement_refused_refuses_the_whole_message()
    {
        RuleSet rules = RuleSets.Build("- {name: no-ddl, match: {statement: [ddl]}, refuse: {message: 'no DDL here'}}");

        RuleDecision decision = rules.Evaluate("DROP TABLE a; DROP TABLE b;");

        Assert.True(decision.RefusesWholeMessage);
        Assert.Equal($"{NoDdl}; {NoDdl};", decision.Text);
    }

    [Fact]
    public void A_tag_applies_to_each_statement_of_a_message() =>
        Assert.Equal("/* t */ SELECT 1; /* t */ SELECT 2", RuleSets.Build("- {name: r, match: {}, tag: t}").Result("SELECT 1; SELECT 2"));

    [Fact]
    public void A_parse_is_one_statement_and_gets_the_same_rules()
    {
        RuleSet rules = RuleSets.Build("""
            - {name: rename, match: {query: 'old_t'}, rewrite: new_t}
            - {name: no-ddl, match: {statement: [ddl]}, refuse: {message: 'no DDL here'}}
            """);

        Assert.Equal("SELECT * FROM new_t WHERE id = $1", rules.Result("SELECT * FROM old_t WHERE id = $1", protocol: QueryProtocol.Extended));
        RuleDecision refusal = rules.Evaluate("CREATE TABLE t (id int)", protocol: QueryProtocol.Extended);
        Assert.True(refusal.RefusesWholeMessage);
        Assert.Equal(NoDdl, refusal.Text);
    }

    [Fact]
    public void An_unchanged_message_gets_the_one_shared_unchanged_decision()
    {
        RuleSet rules = RuleSets.Build("- {name: r, match: {statement: [ddl]}, refuse: {}}");

        Assert.Same(RuleDecision.Unchanged, rules.Evaluate("SELECT 1"));
        Assert.Same(RuleDecision.Unchanged, RuleSet.Empty.Evaluate("DROP TABLE t"));
        Assert.Same(RuleDecision.Unchanged, rules.Evaluate("SELECT 1", RuleSets.App with { User = "other" }));
    }

    [Fact]
    public void Counters_count_matches_applications_refusals_and_log_only_hits_and_are_written_to_the_log()
    {
        RuleSet rules = RuleSets.Build("""
            - {name: no-ddl, match: {statement: [ddl]}, refuse: {}}
            - {name: dry, match: {}, tag: t, mode: log-only}
            - {name: audit, match: {}, log: true}
            """);

        rules.Evaluate("DROP TABLE t");
        rules.Evaluate("DROP TABLE t");
        rules.Evaluate("SELECT 1; SELECT 2");
        var log = new ListLogger();
        rules.WriteCounters(log, "proxy");

        Assert.Equal((2, 2, 0, 2, 0), Snapshot(rules.Rules[0].Counters));
        Assert.Equal((2, 0, 2, 0, 0), Snapshot(rules.Rules[1].Counters));
        Assert.Equal((2, 2, 0, 0, 0), Snapshot(rules.Rules[2].Counters));
        Assert.Equal(
            [
                "Instance proxy, rule no-ddl (enforce): matched 2, applied 2, log-only hits 0, refusals 2, regex timeouts 0",
                "Instance proxy, rule dry (log-only): matched 2, applied 0, log-only hits 2, refusals 0, regex timeouts 0",
                "Instance proxy, rule audit (enforce): matched 2, applied 2, log-only hits 0, refusals 0, regex timeouts 0",
            ],
            log.Messages);
    }

    [Fact]
    public void Rewrites_and_refusals_are_logged_before_and_after_with_the_rule_s_name()
    {
        RuleSet rules = RuleSets.Build("""
            - {name: rename, match: {query: old_t}, rewrite: new_t}
            - {name: no-ddl, match: {statement: [ddl]}, refuse: {message: 'no DDL here'}}
            """);
        var log = new ListLogger();

        rules.Evaluate("SELECT * FROM old_t; DROP TABLE x", protocol: QueryProtocol.Simple, log: log);
        rules.Evaluate("SELECT * FROM old_t", protocol: QueryProtocol.Extended, log: log);

        Assert.Equal(
            [
                "Session 7: query rewritten by rule \"rename\"\n  before: SELECT * FROM old_t\n  after:  SELECT * FROM new_t",
                "Session 7: query refused by rule \"no-ddl\" with 42501 no DDL here\n  query: DROP TABLE x",
                "Session 7: parse rewritten by rule \"rename\"\n  before: SELECT * FROM old_t\n  after:  SELECT * FROM new_t",
            ],
            log.Messages);
    }

    private static (long, long, long, long, long) Snapshot(RuleCounters counters) =>
        (counters.Matched, counters.Applied, counters.LogOnlyHits, counters.Refusals, counters.RegexTimeouts);
}
