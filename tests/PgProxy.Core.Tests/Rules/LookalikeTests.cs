using PgProxy.Core.Rules;

namespace PgProxy.Core.Tests.Rules;

/// <summary>
/// A <c>query</c> match that starts inside a literal, a comment or a dollar-quoted body is passed over; one that starts
/// at the opening delimiter is not; <c>anywhere: true</c> turns the check off.
/// </summary>
public sealed class LookalikeTests
{
    private static readonly RuleSet DropRule = RuleSets.Build("- {name: no-drop, match: {query: 'DROP TABLE'}, refuse: {}}");

    private static readonly RuleSet Rename = RuleSets.Build("- {name: rename, match: {query: 'old_t'}, rewrite: new_t}");

    [Theory]
    [InlineData("SELECT 'DROP TABLE x'")]
    [InlineData("SELECT E'it\\'s DROP TABLE x'")]
    [InlineData("SELECT e'DROP TABLE x'")]
    [InlineData("SELECT U&'DROP TABLE x'")]
    [InlineData("SELECT U&'a''DROP TABLE x' UESCAPE '!'")]
    [InlineData("SELECT N'DROP TABLE x'")]
    [InlineData("SELECT 'a''DROP TABLE x'")]
    [InlineData("SELECT $$DROP TABLE x$$")]
    [InlineData("SELECT $body$ DROP TABLE x $body$")]
    [InlineData("SELECT 1 -- DROP TABLE x")]
    [InlineData("SELECT 1 /* DROP TABLE x */")]
    [InlineData("SELECT 1 /* outer /* nested */ DROP TABLE x */")]
    [InlineData("/* DROP TABLE x */ SELECT 1")]
    [InlineData("SELECT 1 --\n/* -- DROP TABLE x */")]
    [InlineData("SELECT $1, $2 FROM t WHERE a = 'DROP TABLE x'")]
    [InlineData("SELECT a$b, $x$ DROP TABLE x $x$")]
    public void A_lookalike_inside_a_literal_or_a_comment_is_left_alone(string sql) => Assert.Same(RuleDecision.Unchanged, DropRule.Evaluate(sql));

    [Theory]
    [InlineData("DROP TABLE x")]
    [InlineData("SELECT 'DROP TABLE x'; DROP TABLE x")]
    [InlineData("/* DROP TABLE y */ DROP TABLE x")]
    [InlineData("SELECT $$ DROP TABLE $$ FROM t; -- DROP TABLE\nDROP TABLE x")]
    [InlineData("SELECT \"DROP TABLE x\" FROM t")]
    [InlineData("SELECT $1; DROP TABLE x")]
    [InlineData("SELECT 1 - -1; DROP TABLE x")]
    [InlineData("SELECT 4 / 2; DROP TABLE x")]
    public void The_same_text_in_code_matches(string sql) => Assert.Equal(RuleOutcome.Refused, DropRule.Evaluate(sql).Outcome);

    [Fact]
    public void A_rewrite_changes_the_code_and_keeps_the_literals_and_comments()
    {
        Assert.Equal(
            "SELECT new_t.a, 'old_t', $q$old_t$q$, E'old_t', U&'old_t' /* old_t */ FROM new_t -- old_t",
            Rename.Result("SELECT old_t.a, 'old_t', $q$old_t$q$, E'old_t', U&'old_t' /* old_t */ FROM old_t -- old_t"));
    }

    [Fact]
    public void A_match_passed_over_in_a_literal_does_not_hide_a_real_one_that_overlaps_it()
    {
        // The first match of 'x.*y' starts inside the literal and runs to the end; one character on, the next starts in code.
        RuleSet rules = RuleSets.Build("- {name: r, match: {query: 'x[^;]*y'}, tag: hit}");

        Assert.Equal("/* hit */ SELECT 'x' || x, y", rules.Result("SELECT 'x' || x, y"));
    }

    [Theory]
    [InlineData("'DROP", "SELECT 'DROP TABLE'")]
    [InlineData("E'DROP", "SELECT E'DROP TABLE'")]
    [InlineData("'DROP", "SELECT E'DROP TABLE'")]
    [InlineData("U&'DROP", "SELECT U&'DROP TABLE'")]
    [InlineData("&'DROP", "SELECT U&'DROP TABLE'")]
    [InlineData("\\$x\\$DROP", "SELECT $x$DROP TABLE$x$")]
    [InlineData("x\\$DROP", "SELECT $x$DROP TABLE$x$")]
    [InlineData("--\\s*DROP", "SELECT 1 -- DROP TABLE")]
    [InlineData("/\\*\\s*DROP", "SELECT 1 /* DROP TABLE */")]
    public void A_match_that_starts_at_the_opening_delimiter_is_outside(string pattern, string sql) =>
        Assert.False(RuleSets.Build($"- {{name: r, match: {{query: '{pattern.Replace("'", "''", StringComparison.Ordinal)}'}}, tag: t}}").Evaluate(sql).IsUnchanged);

    [Theory]
    [InlineData("DROP", "SELECT 'DROP TABLE'")]
    [InlineData("ROP", "SELECT 'DROP TABLE'")]
    [InlineData("TABLE'", "SELECT 'DROP TABLE'")]
    [InlineData("TABLE\\$", "SELECT $x$DROP TABLE$x$")]
    [InlineData("\\s+DROP", "SELECT 1 -- DROP TABLE")]
    [InlineData("\\s+DROP", "SELECT 1 /* DROP TABLE */")]
    [InlineData("\\*/", "SELECT 1 /* DROP TABLE */")]
    public void A_match_that_starts_after_the_opening_delimiter_is_inside(string pattern, string sql) =>
        Assert.True(RuleSets.Build($"- {{name: r, match: {{query: '{pattern.Replace("'", "''", StringComparison.Ordinal)}'}}, tag: t}}").Evaluate(sql).IsUnchanged);

    [Fact]
    public void Anywhere_lets_a_pattern_match_inside_literals_and_comments()
    {
        RuleSet rules = RuleSets.Build("- {name: r, match: {query: 'old_t', anywhere: true}, rewrite: new_t}");

        Assert.Equal("SELECT 'new_t' /* new_t */ FROM new_t", rules.Result("SELECT 'old_t' /* old_t */ FROM old_t"));
    }

    [Fact]
    public void Text_the_lexer_rejects_is_matched_as_with_anywhere()
    {
        // An unterminated quote: the server rejects the whole message before running any of it.
        Assert.Equal(RuleOutcome.Refused, DropRule.Evaluate("SELECT 'DROP TABLE x").Outcome);
    }

    [Fact]
    public void Positions_are_in_characters_whatever_the_encoding_of_what_comes_before()
    {
        Assert.Equal("SELECT 'é old_t', \"ü\", new_t", Rename.Result("SELECT 'é old_t', \"ü\", old_t"));
        Assert.Equal("SELECT U&'é old_t', new_t", Rename.Result("SELECT U&'é old_t', old_t"));
    }

    [Theory]
    [InlineData("SELECT abalance FROM pgbench_accounts WHERE aid = 5;", 52)]
    [InlineData("SELECT $1, $2 FROM t", 20)]
    [InlineData("SELECT 1 - 1 / 2", 16)]
    [InlineData("SELECT 'a'", 7)]
    [InlineData("SELECT $$a$$", 7)]
    [InlineData("SELECT $1 -- c", 10)]
    [InlineData("SELECT 1 /* c */", 9)]
    [InlineData("SELECT 1$", 8)]
    public void The_lexer_is_asked_only_past_the_first_possible_opening_delimiter(string sql, int expected) =>
        Assert.Equal(expected, StatementAnalysis.FirstPossibleOpening(sql));
}
