using PgProxy.Core.Rules;
using PgProxy.Sql;

namespace PgProxy.Core.Tests.Rules;

/// <summary>How rules split a message into statements: the parser's split, with no parse where one statement is certain.</summary>
public sealed class StatementSplitTests
{
    [Theory]
    [InlineData("SELECT abalance FROM pgbench_accounts WHERE aid = 42;")]
    [InlineData("SELECT 1 ;  \n")]
    [InlineData("UPDATE t SET a = 'x' WHERE b = 2;")]
    [InlineData("SELECT 1; SELECT 2")]
    [InlineData("SELECT ';' AS a;")]
    [InlineData("SELECT 1; SELECT 2;")]
    [InlineData("CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2);")]
    public void Statements_are_those_the_parser_finds(string text)
    {
        string[] expected = [.. PostgresParser.Split(text).Select(span => span.TextOf(text))];

        Assert.Equal(expected, RuleSet.SplitStatements(text).Select(span => span.TextOf(text)));
    }

    [Theory]
    [InlineData(";")]
    [InlineData("  ;  ")]
    public void A_lone_semicolon_is_no_statement(string text) => Assert.Empty(RuleSet.SplitStatements(text));
}
