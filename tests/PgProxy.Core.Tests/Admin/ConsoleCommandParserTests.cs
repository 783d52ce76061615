using PgProxy.Core.Admin;

namespace PgProxy.Core.Tests.Admin;

public sealed class ConsoleCommandParserTests
{
    [Theory]
    [InlineData("SHOW HELP", "ShowHelp")]
    [InlineData("show help", "ShowHelp")]
    [InlineData("  Show\tVersion ; ", "ShowVersion")]
    [InlineData("SHOW CONFIG;", "ShowConfig")]
    [InlineData("show instances", "ShowInstances")]
    [InlineData("SHOW\nSESSIONS", "ShowSessions")]
    [InlineData("show stats", "ShowStats")]
    [InlineData("show queries", "ShowQueries")]
    [InlineData("show rules", "ShowRules")]
    [InlineData("show plugins", "ShowPlugins")]
    [InlineData("reload", "Reload")]
    [InlineData("Reset Stats", "ResetStats")]
    [InlineData("shutdown", "Shutdown")]
    public void Commands_are_read_in_any_case_and_spacing_with_an_optional_semicolon(string text, string kind)
    {
        Assert.Equal(Enum.Parse<ConsoleCommandKind>(kind), ConsoleCommandParser.Parse(text).Kind);
    }

    [Fact]
    public void Kill_and_cancel_take_a_session_id()
    {
        Assert.Equal(42, ConsoleCommandParser.Parse("KILL 42").SessionId);
        Assert.Equal(ConsoleCommandKind.Cancel, ConsoleCommandParser.Parse("cancel 7;").Kind);
        Assert.Equal(7, ConsoleCommandParser.Parse("cancel 7;").SessionId);
    }

    [Theory]
    [InlineData("KILL")]
    [InlineData("KILL x")]
    [InlineData("KILL 0")]
    [InlineData("KILL -3")]
    [InlineData("KILL 1 2")]
    [InlineData("CANCEL")]
    public void A_missing_or_malformed_session_id_is_a_syntax_error_that_says_what_is_expected(string text)
    {
        var error = Assert.Throws<ConsoleException>(() => ConsoleCommandParser.Parse(text));

        Assert.Equal("42601", error.SqlState);
        Assert.Contains("<session id>", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Shutdown_is_immediate_unless_safe()
    {
        Assert.False(ConsoleCommandParser.Parse("SHUTDOWN").Safe);
        Assert.True(ConsoleCommandParser.Parse("shutdown safe").Safe);
    }

    [Theory]
    [InlineData("SHOW QUERIES", "Total", null)]
    [InlineData("show queries order by calls", "Calls", null)]
    [InlineData("SHOW QUERIES ORDER BY p99 LIMIT 10", "P99", 10)]
    [InlineData("SHOW QUERIES LIMIT 0", "Total", 0)]
    [InlineData("show queries order by mean;", "Mean", null)]
    public void Show_queries_takes_an_order_and_a_limit(string text, string order, int? limit)
    {
        ConsoleCommand command = ConsoleCommandParser.Parse(text);

        Assert.Equal((Enum.Parse<QueryOrder>(order), limit), (command.Order, command.Limit));
    }

    [Theory]
    [InlineData("SHOW QUERIES ORDER calls")]
    [InlineData("SHOW QUERIES ORDER BY size")]
    [InlineData("SHOW QUERIES LIMIT")]
    [InlineData("SHOW QUERIES LIMIT many")]
    [InlineData("SHOW QUERIES LIMIT 5 ORDER BY calls")]
    public void Show_queries_with_other_clauses_is_a_syntax_error(string text)
    {
        var error = Assert.Throws<ConsoleException>(() => ConsoleCommandParser.Parse(text));

        Assert.Equal("42601", error.SqlState);
        Assert.Contains("SHOW QUERIES [ORDER BY total|mean|p99|calls] [LIMIT n]", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("SELECT 1")]
    [InlineData("SHOW")]
    [InlineData("SHOW HELP PLEASE")]
    [InlineData("RELOAD NOW")]
    [InlineData("SHUTDOWN FAST")]
    [InlineData("RESET")]
    public void Anything_else_is_a_syntax_error_whose_hint_lists_the_commands(string text)
    {
        var error = Assert.Throws<ConsoleException>(() => ConsoleCommandParser.Parse(text));

        Assert.Equal("42601", error.SqlState);
        Assert.Equal($"unknown console command \"{text}\"", error.Message);
        Assert.NotNull(error.Hint);
        Assert.All(ConsoleCatalog.All, command => Assert.Contains(command.Syntax, error.Hint, StringComparison.Ordinal));
    }

    [Fact]
    public void A_query_string_splits_into_its_statements_and_empty_ones_are_dropped()
    {
        Assert.Equal(["SHOW VERSION", "show help"], ConsoleCommandParser.Split(" SHOW VERSION ;; show help;\n"));
        Assert.Empty(ConsoleCommandParser.Split(" ; ;"));
    }

    [Fact]
    public void Every_command_of_the_catalog_parses_from_its_own_syntax()
    {
        foreach (ConsoleCommandInfo info in ConsoleCatalog.All)
        {
            string text = info.Syntax.Replace("<session id>", "1", StringComparison.Ordinal)
                .Replace(" [ORDER BY total|mean|p99|calls] [LIMIT n]", string.Empty, StringComparison.Ordinal)
                .Replace(" [SAFE]", string.Empty, StringComparison.Ordinal);
            Assert.Equal(info.Kind, ConsoleCommandParser.Parse(text).Kind);
        }
    }
}
