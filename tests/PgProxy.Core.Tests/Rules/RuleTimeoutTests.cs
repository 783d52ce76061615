using System.Net;
using PgProxy.Core.Rules;

namespace PgProxy.Core.Tests.Rules;

/// <summary>
/// A pattern that backtracks catastrophically hits <c>settings.rule-timeout</c>: the rule is skipped, the timeout is
/// logged and counted, the caller never sees an exception, and the cached decision does not pay the timeout again.
/// </summary>
public sealed class RuleTimeoutTests
{
    // A backreference keeps the pattern on the backtracking engine (the linear one would refuse it), and the nested
    // quantifier then tries every way of splitting the a's before failing: 2^40 of them, far past any timeout.
    private const string Catastrophic = "'^(a+)+\\1b'";

    private static readonly string ManyAs = new('a', 40);

    [Fact]
    public void A_query_pattern_that_times_out_skips_its_rule_and_the_others_still_run()
    {
        RuleSet rules = RuleSets.Build(
            "- {name: slow, match: {query: " + Catastrophic + "}, refuse: {}}\n- {name: tag, match: {}, tag: t}",
            "rule-timeout: 20ms");
        Assert.False(rules.Rules[0].Config.Match.Query!.IsLinear);
        var log = new ListLogger();

        RuleDecision decision = rules.Evaluate(ManyAs, log: log);

        Assert.Equal($"/* t */ {ManyAs}", decision.Text);
        Assert.Equal([("slow", RuleHitKind.TimedOut), ("tag", RuleHitKind.Applied)], decision.Hits.Select(hit => (hit.Rule.Name, hit.Kind)));
        Assert.Equal(1, rules.Rules[0].Counters.RegexTimeouts);
        Assert.Equal(0, rules.Rules[0].Counters.Matched);
        var warning = Assert.Single(log.Entries, entry => entry.Id.Id == 514);
        Assert.Equal($"Session 7: rule slow skipped: a regular expression of it ran past rule-timeout (20ms) on query: {ManyAs}", warning.Message);
    }

    [Fact]
    public void A_text_is_tried_again_after_its_first_timeout_and_cached_after_its_second()
    {
        // A first timeout may be a passing stall (a GC pause): the rule gets another chance on the next occurrence.
        // A second one is the text's fault: that decision is cached, and the pattern no longer runs on that text.
        RuleSet rules = RuleSets.Build($"- {{name: slow, match: {{query: {Catastrophic}}}, refuse: {{}}}}", "rule-timeout: 20ms");
        var log = new ListLogger();

        rules.Evaluate(ManyAs, log: log);
        Assert.Equal(0, rules.CachedDecisions);
        rules.Evaluate(new string(ManyAs.AsSpan()), log: log);
        Assert.Equal(1, rules.CachedDecisions);
        RuleDecision third = rules.Evaluate(new string(ManyAs.AsSpan()), log: log);

        Assert.Equal(RuleOutcome.Unchanged, third.Outcome);
        Assert.Equal(2, rules.Rules[0].Counters.RegexTimeouts);
        Assert.Equal(2, log.Entries.Count);
    }

    [Fact]
    public void A_name_pattern_that_times_out_skips_its_rule_for_the_whole_message()
    {
        RuleSet rules = RuleSets.Build($"- {{name: slow, match: {{user: ['/{Catastrophic.Trim('\'')}/']}}, refuse: {{}}}}", "rule-timeout: 20ms");

        RuleDecision decision = rules.Evaluate("SELECT 1", new RuleSubject(ManyAs, "db", null, IPAddress.Loopback));

        RuleHit hit = Assert.Single(decision.Hits);
        Assert.Equal((RuleHitKind.TimedOut, -1), (hit.Kind, hit.Statement));
        Assert.Equal(RuleOutcome.Unchanged, decision.Outcome);
        Assert.Equal(1, rules.Rules[0].Counters.RegexTimeouts);
    }

    [Fact]
    public void The_same_pattern_without_the_backreference_runs_on_the_linear_engine_and_answers_at_once()
    {
        // A generous timeout: the first match builds the linear engine's automaton, which on a loaded machine can take
        // longer than a tight timeout. A backtracking run of 2^40 steps would still pass ten seconds by far.
        RuleSet rules = RuleSets.Build("- {name: fast, match: {query: '^(a+)+b'}, refuse: {}}", "rule-timeout: 10s");

        Assert.True(rules.Rules[0].Config.Match.Query!.IsLinear);
        Assert.Equal(RuleOutcome.Unchanged, rules.Evaluate(ManyAs).Outcome);
        Assert.Equal(RuleOutcome.Refused, rules.Evaluate(ManyAs + "b").Outcome);
        Assert.Equal(0, rules.Rules[0].Counters.RegexTimeouts);
    }
}
