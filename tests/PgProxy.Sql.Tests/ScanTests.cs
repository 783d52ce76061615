using PgQuery;

namespace PgProxy.Sql.Tests;

public sealed class ScanTests
{
    [Fact]
    public void Tokens_carry_string_positions_kinds_and_keyword_kinds()
    {
        const string sql = "SELECT \"t\".\"a b\" FROM s.t WHERE x >= 'it''s'";
        SqlTokens tokens = PostgresParser.Scan(sql);

        string[] texts = [.. tokens.Select(token => sql[token.Start..token.End])];
        Assert.Equal(["SELECT", "\"t\"", ".", "\"a b\"", "FROM", "s", ".", "t", "WHERE", "x", ">=", "'it''s'"], texts);
        Assert.Equal(new SqlToken(0, 6, Token.Select, KeywordKind.ReservedKeyword), tokens[0]);
        Assert.Equal(Token.Ident, tokens[3].Kind);
        Assert.Equal(KeywordKind.NoKeyword, tokens[3].KeywordKind);
        Assert.Equal(Token.GreaterEquals, tokens[10].Kind);
        Assert.Equal(Token.Sconst, tokens[11].Kind);
        Assert.Same(sql, tokens.Text);
        Assert.Equal("\"a b\"", tokens.TextOf(3).ToString());
    }

    [Fact]
    public void Positions_are_string_indexes_past_multibyte_characters()
    {
        // Two-, three- and four-byte UTF-8 (the last a surrogate pair in .NET) before, inside and between tokens.
        const string sql = "SELECT 'é€😀' AS \"naïve 😀\", ß FROM t";
        SqlTokens tokens = PostgresParser.Scan(sql);

        string[] texts = [.. tokens.Select(token => sql[token.Start..token.End])];
        Assert.Equal(["SELECT", "'é€😀'", "AS", "\"naïve 😀\"", ",", "ß", "FROM", "t"], texts);
        Assert.Equal(sql.Length, tokens[^1].End);
    }

    [Fact]
    public void Comments_are_not_tokens_and_what_they_contain_is_not_scanned()
    {
        const string sql = "SELECT /* count(DISTINCT x) */ a -- FROM hidden\nFROM t";
        SqlTokens tokens = PostgresParser.Scan(sql);

        string[] texts = [.. tokens.Select(token => sql[token.Start..token.End])];
        Assert.Equal(["SELECT", "a", "FROM", "t"], texts);
        Assert.DoesNotContain(tokens, token => token.Kind is Token.SqlComment or Token.CComment);
    }

    [Fact]
    public void Dollar_quoted_strings_are_single_tokens()
    {
        const string sql = "SELECT $fn$ count(DISTINCT x); $fn$, $$a$$";
        SqlTokens tokens = PostgresParser.Scan(sql);

        Assert.Equal(4, tokens.Count);
        Assert.Equal("$fn$ count(DISTINCT x); $fn$", tokens.TextOf(1).ToString());
        Assert.Equal(Token.Sconst, tokens[1].Kind);
    }

    [Fact]
    public void Scanning_does_not_need_valid_grammar()
    {
        SqlTokens tokens = PostgresParser.Scan("FROM FROM ) (");

        Assert.Equal(4, tokens.Count);
    }

    [Fact]
    public void A_lexical_error_is_a_parse_exception()
    {
        SqlParseException error = Assert.Throws<SqlParseException>(() => PostgresParser.Scan("SELECT 'unterminated"));

        Assert.Contains("unterminated", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_text_has_no_tokens()
    {
        Assert.Empty(PostgresParser.Scan(""));
        Assert.Empty(PostgresParser.Scan("  -- only a comment"));
    }

    [Fact]
    public void IndexAt_finds_a_token_by_its_first_character_only()
    {
        const string sql = "SELECT count(x) FROM t";
        SqlTokens tokens = PostgresParser.Scan(sql);

        Assert.Equal(0, tokens.IndexAt(0));
        Assert.Equal(1, tokens.IndexAt(sql.IndexOf("count", StringComparison.Ordinal)));
        Assert.Equal(5, tokens.IndexAt(sql.IndexOf("FROM", StringComparison.Ordinal)));
        Assert.Equal(6, tokens.IndexAt(sql.Length - 1));
        Assert.Equal(-1, tokens.IndexAt(1));
        Assert.Equal(-1, tokens.IndexAt(6));
        Assert.Equal(-1, tokens.IndexAt(-1));
        Assert.Equal(-1, tokens.IndexAt(sql.Length));
    }

    [Fact]
    public void IndexAt_agrees_with_parse_tree_locations_after_conversion()
    {
        const string sql = "SELECT 'ü', count(DISTINCT \"é\".x) FROM t \"é\"";
        ParseResult tree = PostgresParser.Parse(sql);
        SqlTokens tokens = PostgresParser.Scan(sql);
        int byteLocation = tree.Stmts[0].Stmt.SelectStmt.TargetList[1].ResTarget.Val.FuncCall.Location;

        int index = tokens.IndexAt(new Utf8Offsets(sql).ToCharIndex(byteLocation));

        Assert.Equal("count", tokens.TextOf(index).ToString());
    }

    [Fact]
    public void MatchingClose_pairs_nested_parentheses()
    {
        const string sql = "SELECT ((a) + (b)), f((c)) )";
        SqlTokens tokens = PostgresParser.Scan(sql);
        int outer = tokens.IndexAt(sql.IndexOf("((", StringComparison.Ordinal));
        int call = tokens.IndexAt(sql.IndexOf("((c", StringComparison.Ordinal));

        Assert.Equal(sql.IndexOf("), f", StringComparison.Ordinal), tokens[tokens.MatchingClose(outer)].Start);
        Assert.Equal(sql.IndexOf("(b)", StringComparison.Ordinal) + 2, tokens[tokens.MatchingClose(outer + 5)].Start);
        Assert.Equal(sql.IndexOf("c))", StringComparison.Ordinal) + 2, tokens[tokens.MatchingClose(call)].Start);
    }

    [Fact]
    public void MatchingClose_is_minus_one_for_unclosed_and_non_parentheses()
    {
        SqlTokens tokens = PostgresParser.Scan("SELECT (a, (b)");

        Assert.Equal(-1, tokens.MatchingClose(1));
        Assert.Equal(6, tokens.MatchingClose(4));
        Assert.Equal(-1, tokens.MatchingClose(0));
        Assert.Equal(-1, tokens.MatchingClose(6));
        Assert.Equal(-1, tokens.MatchingClose(5));
        Assert.Equal(-1, tokens.MatchingClose(-1));
        Assert.Equal(-1, tokens.MatchingClose(99));
    }

    [Fact]
    public void The_hand_decoder_agrees_with_the_generated_protobuf_types()
    {
        const string sql = "SELECT 'é€😀', $1::text /* c */ FROM \"a b\" -- x\n WHERE y <> 2.5e3";
        SqlTokens tokens = PostgresParser.Scan(sql);
        var offsets = new Utf8Offsets(sql);

        ScanResult expected = PostgresParserTestHooks.ScanWithGeneratedTypes(sql);
        SqlToken[] fromGenerated =
        [
            .. expected.Tokens
                .Where(token => token.Token is not (Token.SqlComment or Token.CComment))
                .Select(token => new SqlToken(offsets.ToCharIndex(token.Start), offsets.ToCharIndex(token.End), token.Token, token.KeywordKind)),
        ];
        Assert.Equal(fromGenerated, tokens);
        Assert.Contains(expected.Tokens, token => token.Token == Token.CComment);
        Assert.Contains(expected.Tokens, token => token.Token == Token.SqlComment);
    }
}
