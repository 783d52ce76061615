using PgQuery;

namespace PgProxy.Sql.Tests;

public sealed class ParseTests
{
    [Fact]
    public void Parses_a_select_into_a_typed_tree_with_byte_locations()
    {
        ParseResult result = PostgresParser.Parse("SELECT count(DISTINCT \"t\".\"a b\") FROM s.t \"t\"");

        SelectStmt select = Assert.Single(result.Stmts).Stmt.SelectStmt;
        FuncCall call = select.TargetList[0].ResTarget.Val.FuncCall;
        Assert.True(call.AggDistinct);
        Assert.Equal("count", call.Funcname[0].String.Sval);
        Assert.Equal(7, call.Location);
        RangeVar table = select.FromClause[0].RangeVar;
        Assert.Equal(("s", "t", "t"), (table.Schemaname, table.Relname, table.Alias.Aliasname));
    }

    [Fact]
    public void Invalid_sql_gives_the_parser_message_and_position()
    {
        SqlParseException error = Assert.Throws<SqlParseException>(() => PostgresParser.Parse("SELECT FROM WHERE"));

        Assert.Contains("syntax error at or near \"WHERE\"", error.Message, StringComparison.Ordinal);
        Assert.Equal(13, error.CursorPosition);
    }

    [Fact]
    public void Byte_locations_map_to_string_indexes_past_multibyte_characters()
    {
        const string sql = "SELECT 'é€😀', x FROM t";
        ParseResult result = PostgresParser.Parse(sql);
        int byteLocation = result.Stmts[0].Stmt.SelectStmt.TargetList[1].ResTarget.Val.ColumnRef.Location;

        int index = new Utf8Offsets(sql).ToCharIndex(byteLocation);

        Assert.Equal('x', sql[index]);
        Assert.Equal(byteLocation, new Utf8Offsets(sql).ToByteOffset(index));
    }
}
