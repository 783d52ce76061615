using PgProxy.Abstractions;
using PgProxy.Core.Interception;
using PgProxy.Sql;
using PgQuery;

namespace PgProxy.Core.Tests.Interception;

/// <summary>
/// The DO block that makes the server raise a refusal. Whatever the message holds, PostgreSQL's own parser must read
/// back one statement whose RAISE carries exactly that message and SQLSTATE: a message that could end its quoting
/// would let an interceptor's text (often built from the client's query) run as SQL.
/// </summary>
public sealed class RefusalStatementsTests
{
    [Fact]
    public void A_plain_message_is_raised_from_a_do_block_with_dollar_quoting()
    {
        string statement = RefusalStatements.RaiseError("42501", "not allowed");

        Assert.Equal(
            "DO $pgproxy_refusal$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = $pgproxy_message$not allowed$pgproxy_message$; END$pgproxy_refusal$",
            statement);
    }

    [Fact]
    public void A_message_holding_a_tag_gets_a_longer_tag_it_does_not_hold()
    {
        string statement = RefusalStatements.RaiseError("42501", "$pgproxy_message$ and $pgproxy_message_$ and $pgproxy_refusal$");

        Assert.Equal(
            "DO $pgproxy_refusal_$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = $pgproxy_message__$$pgproxy_message$ and $pgproxy_message_$ and $pgproxy_refusal$$pgproxy_message__$; END$pgproxy_refusal_$",
            statement);
    }

    public static TheoryData<string> Messages() =>
    [
        "not allowed",
        string.Empty,
        "it's 'quoted' and \"double quoted\"",
        "'); DROP TABLE users; --",
        "back\\slash \\' \\\\ \\n",
        "E'\\x41'",
        "$",
        "$$",
        "$$ DROP TABLE users; $$",
        "costs $5, or $1 in a placeholder",
        "ends with a dollar $",
        "$pgproxy_message$",
        "$pgproxy_message$; END$pgproxy_refusal$; DROP TABLE users; --",
        "$pgproxy_refusal$",
        "pgproxy_message$",
        "x$pgproxy_message",
        "$pgproxy_message_$pgproxy_message__$",
        "$pgproxy_mess",
        "$tag$ nested $tag$",
        "line one\nline two\r\nline three\ttabbed",
        "-- not a comment\n/* nor this */",
        "100% sure: %s %I %L %%",
        "Zürich, 東京, Ελληνικά, emoji 😀",
        "; END; BEGIN RAISE NOTICE 'again';",
    ];

    [Theory]
    [MemberData(nameof(Messages))]
    public void PostgreSQL_reads_back_exactly_the_message_and_the_sqlstate(string message)
    {
        string statement = RefusalStatements.RaiseError("P0001", message);

        (string sqlState, string raised) = ReadRaise(statement);

        Assert.Equal("P0001", sqlState);
        Assert.Equal(message, raised);
    }

    [Theory]
    [InlineData("42501")]
    [InlineData("XX000")]
    [InlineData("P0001")]
    [InlineData("0A000")]
    public void Every_valid_sqlstate_is_raised_as_it_is(string sqlState)
    {
        string statement = RefusalStatements.RaiseError(SqlStateRules.Validate(sqlState), "refused");

        Assert.Equal((sqlState, "refused"), ReadRaise(statement));
    }

    [Theory]
    [InlineData("")]
    [InlineData("4250")]
    [InlineData("425010")]
    [InlineData("42a01")]
    [InlineData("4250'")]
    [InlineData("'; --")]
    [InlineData("42 01")]
    [InlineData("42501\n")]
    [InlineData("４２５０１")]
    public void A_query_refusal_with_an_invalid_sqlstate_is_rejected_before_any_statement_is_built(string sqlState)
    {
        // RaiseError puts the SQLSTATE in single quotes as it is; the plugin API is what keeps it to five digits
        // or upper-case letters, for decisions and for RefusedException alike.
        Assert.Throws<ArgumentException>(() => QueryDecision.Refuse(sqlState, "refused"));
        Assert.Throws<ArgumentException>(() => new RefusedException(sqlState, "refused"));
    }

    [Fact]
    public void A_null_sqlstate_or_message_is_rejected()
    {
        Assert.Throws<ArgumentNullException>(() => QueryDecision.Refuse(null!, "refused"));
        Assert.Throws<ArgumentNullException>(() => QueryDecision.Refuse("42501", null!));
    }

    /// <summary>
    /// Parses <paramref name="statement"/> as PostgreSQL does: one DO statement; its body scanned with the same lexer
    /// PL/pgSQL uses; the MESSAGE expression evaluated as a constant.
    /// </summary>
    private static (string SqlState, string Message) ReadRaise(string statement)
    {
        ParseResult tree = PostgresParser.Parse(statement);
        RawStmt only = Assert.Single(tree.Stmts);
        DefElem body = Assert.Single(only.Stmt.DoStmt.Args).DefElem;
        Assert.Equal("as", body.Defname);
        string code = body.Arg.String.Sval;

        SqlTokens tokens = PostgresParser.Scan(code);
        string[] texts = [.. tokens.Select(token => code[token.Start..token.End])];
        Assert.Equal(13, texts.Length);
        Assert.Equal(["BEGIN", "RAISE", "EXCEPTION", "USING", "ERRCODE", "="], texts[..6]);
        Assert.Equal([",", "MESSAGE", "="], texts[7..10]);
        Assert.Equal([";", "END"], texts[11..]);
        Assert.Equal(Token.Sconst, tokens[6].Kind);
        Assert.Equal(Token.Sconst, tokens[10].Kind);

        return (ConstantValue(texts[6]), ConstantValue(texts[10]));
    }

    private static string ConstantValue(string literal)
    {
        ParseResult tree = PostgresParser.Parse("SELECT " + literal);
        return Assert.Single(tree.Stmts).Stmt.SelectStmt.TargetList[0].ResTarget.Val.AConst.Sval.Sval;
    }
}
