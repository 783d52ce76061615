using PgProxy.Core.Rules;

namespace PgProxy.Core.Tests.Rules;

/// <summary>
/// The rule set scans a statement once with the union of its linear <c>query</c> patterns and skips them all when it
/// finds none: what each rule does must not change, whatever its pattern holds (inline options, alternatives, anchors,
/// groups of the same name), and patterns left out of the union (backtracking ones, ones with a <c>#</c>) still run.
/// </summary>
public sealed class QueryPatternUnionTests
{
    private static readonly RuleSet Rules = RuleSets.Build("""
        - {name: case-free, match: {query: '(?i)drop\s+table'}, refuse: {}}
        - {name: either, match: {query: 'lo_import|lo_export'}, refuse: {}}
        - {name: anchored, match: {query: '^VACUUM$'}, refuse: {}}
        - {name: named-1, match: {query: 'FROM (?<t>old_a)'}, rewrite: 'FROM new_a', continue: true}
        - {name: named-2, match: {query: 'JOIN (?<t>old_b)'}, rewrite: 'JOIN new_b', continue: true}
        - {name: lookbehind, match: {query: '(?<=SELECT )secret'}, rewrite: "'***'"}
        - {name: hash, match: {query: 'x#y'}, tag: hash}
        """);

    [Theory]
    [InlineData("DROP TABLE x", "case-free")]
    [InlineData("drop   table x", "case-free")]
    [InlineData("SELECT lo_export(1, '/tmp/f')", "either")]
    [InlineData("VACUUM", "anchored")]
    public void A_pattern_in_the_union_still_refuses_alone(string sql, string rule)
    {
        RuleDecision decision = Rules.Evaluate(sql);

        Assert.Equal(RuleOutcome.Refused, decision.Outcome);
        Assert.Equal(rule, Assert.Single(decision.HitArray).Rule.Name);
    }

    [Theory]
    [InlineData("SELECT 1")]
    [InlineData("DROP VIEW x")]
    [InlineData("VACUUM FULL")]
    [InlineData("SELECT 'DROP TABLE x'")]
    [InlineData("SELECT DROP")]
    public void A_statement_no_pattern_matches_is_unchanged(string sql) => Assert.Same(RuleDecision.Unchanged, Rules.Evaluate(sql));

    [Fact]
    public void Rules_that_continue_see_the_text_the_rule_before_left()
    {
        Assert.Equal("SELECT * FROM new_a JOIN new_b USING (id)", Rules.Result("SELECT * FROM old_a JOIN old_b USING (id)"));
        Assert.Equal("SELECT * FROM t JOIN new_b USING (id)", Rules.Result("SELECT * FROM t JOIN old_b USING (id)"));
    }

    [Fact]
    public void Patterns_left_out_of_the_union_still_run()
    {
        Assert.Equal("SELECT '***'", Rules.Result("SELECT secret"));
        Assert.Equal("/* hash */ SELECT 'x#y' || x#y", Rules.Result("SELECT 'x#y' || x#y"));
    }
}
