namespace PgProxy.Sql.Tests;

public sealed class SqlEditorTests
{
    [Fact]
    public void Everything_outside_the_replaced_spans_is_kept_exactly()
    {
        const string sql = "select /* keep */ COUNT(DISTINCT \"T\".\"a b\")\r\n\tAS n, 'count(DISTINCT x)' -- trailing\nFROM \"s\".\"T\" \"T\";";
        var editor = new SqlEditor(sql);
        int call = sql.IndexOf("COUNT", StringComparison.Ordinal);
        int callEnd = sql.IndexOf(")\r\n", StringComparison.Ordinal) + 1;

        editor.Replace(call, callEnd - call, "hll_cardinality(hll_union_agg(\"T\".\"a b\"))::bigint");

        Assert.True(editor.HasEdits);
        Assert.Equal(
            "select /* keep */ hll_cardinality(hll_union_agg(\"T\".\"a b\"))::bigint\r\n\tAS n, 'count(DISTINCT x)' -- trailing\nFROM \"s\".\"T\" \"T\";",
            editor.Apply());
    }

    [Fact]
    public void Edits_apply_to_original_positions_whatever_order_they_are_added_in()
    {
        const string sql = "SELECT a, b, c FROM t";
        var forward = new SqlEditor(sql);
        var backward = new SqlEditor(sql);
        (int Start, int Length, string Text)[] edits = [(7, 1, "alpha"), (10, 1, ""), (13, 1, "gamma(c)"), (20, 1, "s.t")];

        foreach (var (start, length, text) in edits)
        {
            forward.Replace(start, length, text);
        }

        foreach (var (start, length, text) in edits.Reverse())
        {
            backward.Replace(start, length, text);
        }

        Assert.Equal("SELECT alpha, , gamma(c) FROM s.t", forward.Apply());
        Assert.Equal(forward.Apply(), backward.Apply());
    }

    [Fact]
    public void Without_edits_the_original_instance_comes_back()
    {
        const string sql = "SELECT 1";
        var editor = new SqlEditor(sql);

        Assert.False(editor.HasEdits);
        Assert.Same(sql, editor.Apply());
    }

    [Theory]
    [InlineData(5, 5, 8, 4)]
    [InlineData(8, 4, 5, 5)]
    [InlineData(5, 5, 5, 5)]
    [InlineData(5, 5, 6, 2)]
    [InlineData(6, 2, 5, 5)]
    [InlineData(5, 5, 7, 0)]
    public void Overlapping_edits_are_rejected(int firstStart, int firstLength, int secondStart, int secondLength)
    {
        var editor = new SqlEditor("SELECT abcdefghij FROM t");
        editor.Replace(firstStart, firstLength, "x");

        Assert.Throws<ArgumentException>(() => editor.Replace(secondStart, secondLength, "y"));
        Assert.Equal(1, editor.EditCount);
    }

    [Fact]
    public void Touching_edits_and_insertions_at_their_edges_are_allowed()
    {
        var editor = new SqlEditor("0123456789");
        editor.Replace(2, 3, "[A]");
        editor.Replace(5, 2, "[B]");
        editor.Insert(2, "<");
        editor.Insert(7, ">");
        editor.Insert(2, "<<");

        Assert.Equal("01<<<[A][B]>789", editor.Apply());
    }

    [Fact]
    public void Spans_outside_the_text_are_rejected()
    {
        var editor = new SqlEditor("SELECT 1");

        Assert.Throws<ArgumentOutOfRangeException>(() => editor.Replace(-1, 1, "x"));
        Assert.Throws<ArgumentOutOfRangeException>(() => editor.Replace(7, 2, "x"));
        Assert.Throws<ArgumentOutOfRangeException>(() => editor.Replace(0, -1, "x"));
        editor.Replace(8, 0, ";");
        Assert.Equal("SELECT 1;", editor.Apply());
    }

    [Fact]
    public void Tokens_from_the_scanner_can_be_replaced_keeping_comments_between_others()
    {
        const string sql = "SELECT count( /* why */ DISTINCT x ) FROM t -- done";
        SqlTokens tokens = PostgresParser.Scan(sql);
        var editor = new SqlEditor(sql);
        int open = tokens.IndexAt(sql.IndexOf('(', StringComparison.Ordinal));

        editor.ReplaceToken(tokens[open - 1], "hll_count");
        editor.ReplaceTokens(tokens[open + 1], tokens[open + 2], "y");

        Assert.Equal("SELECT hll_count( /* why */ y ) FROM t -- done", editor.Apply());
    }
}
