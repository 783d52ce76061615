using PgQuery;

namespace PgProxy.Sql.Tests;

/// <summary>
/// Deeply nested queries must parse or fail with <see cref="SqlParseException"/>, never overflow the stack (which
/// would kill the proxy). Each test runs on a thread with the thread pool's stack size (1.5 MB), where a session's
/// interceptor runs, rather than the test runner's.
/// </summary>
public sealed class DeepNestingTests
{
    private const int ThreadPoolStackBytes = 1536 * 1024;

    public static TheoryData<string, int> Shapes => new()
    {
        { "parentheses", 500 },
        { "parentheses", 20_000 },
        { "additions", 500 },
        { "chain", 5_000 },
        { "subqueries", 500 },
        { "subqueries", 5_000 },
        { "calls", 1_000 },
        { "casts", 3_000 },
        { "not", 3_000 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Deep_queries_parse_or_fail_cleanly_on_a_thread_pool_sized_stack(string shape, int depth)
    {
        string sql = Nest(shape, depth);

        Exception? failure = OnSmallStack(() =>
        {
            try
            {
                ParseResult tree = PostgresParser.Parse(sql);
                Assert.Equal(PostgresParser.Fingerprint(sql), PostgresParser.Fingerprint(PostgresParser.Deparse(tree)));
                Assert.NotEmpty(PostgresParser.Normalize(sql));
                Assert.Single(PostgresParser.Split(sql));
            }
            catch (SqlParseException)
            {
                // A clear refusal is fine (PostgreSQL's own grammar gives up beyond 10,000 levels).
            }
        });

        Assert.Null(failure);
    }

    [Fact]
    public void Five_hundred_nested_parentheses_parse()
    {
        string sql = Nest("additions", 500);

        ParseResult tree = OnSmallStackReturning(() => PostgresParser.Parse(sql));

        Assert.NotNull(tree.Stmts[0].Stmt.SelectStmt.TargetList[0].ResTarget.Val.AExpr);
    }

    [Fact]
    public void Nesting_beyond_the_grammar_is_a_parse_exception()
    {
        SqlParseException error = Assert.Throws<SqlParseException>(() => PostgresParser.Parse(Nest("subqueries", 20_000)));

        Assert.NotEmpty(error.Message);
    }

    [Fact]
    public void Ordinary_queries_are_not_sent_to_the_deep_stack()
    {
        Assert.False(PostgresParser.MayNestDeeply("SELECT COUNT(DISTINCT \"s\".\"Set of Customers\") AS \"ctd\" FROM \"d\".\"s\" \"s\" HAVING (COUNT(1) > 0)"));
        Assert.True(PostgresParser.MayNestDeeply(Nest("chain", PostgresParser.InlineNestingTokens + 1)));
    }

    internal static string Nest(string shape, int depth) => shape switch
    {
        "parentheses" => "SELECT " + new string('(', depth) + "1" + new string(')', depth),
        "additions" => "SELECT " + string.Concat(Enumerable.Repeat("1+(", depth)) + "1" + new string(')', depth),
        "chain" => "SELECT 1" + string.Concat(Enumerable.Repeat("+1", depth)),
        "subqueries" => string.Concat(Enumerable.Repeat("SELECT * FROM (", depth)) + "SELECT 1" + string.Concat(Enumerable.Repeat(") s", depth)),
        "calls" => "SELECT " + string.Concat(Enumerable.Repeat("f(", depth)) + "1" + new string(')', depth),
        "casts" => "SELECT 1" + string.Concat(Enumerable.Repeat("::int", depth)),
        "not" => "SELECT " + string.Concat(Enumerable.Repeat("NOT ", depth)) + "true",
        _ => throw new ArgumentOutOfRangeException(nameof(shape)),
    };

    private static Exception? OnSmallStack(Action action)
    {
        Exception? failure = null;
        var thread = new Thread(
            () =>
            {
                try
                {
                    action();
                }
                catch (Exception exception)
                {
                    failure = exception;
                }
            },
            ThreadPoolStackBytes);
        thread.Start();
        thread.Join();
        return failure;
    }

    private static T OnSmallStackReturning<T>(Func<T> work)
    {
        T result = default!;
        Exception? failure = OnSmallStack(() => result = work());
        return failure is null ? result : throw new InvalidOperationException("Failed on the small stack.", failure);
    }
}
