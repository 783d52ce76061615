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

    [Fact]
    public async Task ParseAsync_parses_ordinary_queries_at_once_and_awaits_deep_ones_without_blocking()
    {
        ValueTask<PgQuery.ParseResult> ordinary = PostgresParser.ParseAsync("SELECT count(DISTINCT s.v) FROM s");
        Assert.True(ordinary.IsCompletedSuccessfully);
        Assert.Single((await ordinary).Stmts);

        PgQuery.ParseResult deep = await PostgresParser.ParseAsync(Nest("subqueries", 500));
        Assert.Single(deep.Stmts);

        await Assert.ThrowsAsync<SqlParseException>(async () => await PostgresParser.ParseAsync("SELECT FROM WHERE"));
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

public sealed class NestingBoundTests
{
    [Theory]
    [InlineData("SELECT COUNT(DISTINCT \"crm_data_source\".\"Set of Customers\") AS \"ctd:Set of Customers:ok\"\nFROM \"crm_dim\".\"crm_data_source\" \"crm_data_source\"\nHAVING (COUNT(1) > 0);")]
    [InlineData("SELECT 1 AS x, 2.5e3::numeric, $1, E'a\\'b' FROM t WHERE a[1:2] @> ARRAY[1] AND b !~~* 'x' OR NOT c IS DISTINCT FROM d")]
    [InlineData("SELECT \"é\"AS\"ü\", CASE WHEN x<=>y THEN 1 ELSE -2 END, f(VARIADIC ARRAY[1]) FROM t1 JOIN t2 USING(id)")]
    [InlineData("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM (SELECT a||b FROM t) s; FETCH 10 FROM c")]
    [InlineData("SELECT $$a$$ || $x$b$x$, U&'d\\0061t' , B'101', X'1F' /* NOT NOT */ -- (((\n")]
    public void The_cheap_bound_is_never_below_the_scanner_count(string sql)
    {
        int scanned = PostgresParser.Scan(sql).Count(token => token.Kind is not (PgQuery.Token.Ident or PgQuery.Token.Uident
            or PgQuery.Token.Iconst or PgQuery.Token.Fconst or PgQuery.Token.Sconst or PgQuery.Token.Usconst
            or PgQuery.Token.Bconst or PgQuery.Token.Xconst or PgQuery.Token.Param or PgQuery.Token.Ascii44
            or PgQuery.Token.Ascii46 or PgQuery.Token.Ascii59));

        Assert.InRange(PostgresParser.NestingTokenUpperBound(sql), scanned, int.MaxValue);
    }

    [Fact]
    public void The_seed_query_needs_no_scan_before_its_parse()
    {
        const string sql = "SELECT COUNT(DISTINCT \"crm_data_source\".\"Set of Customers\") AS \"ctd:Set of Customers:ok\"\nFROM \"crm_dim\".\"crm_data_source\" \"crm_data_source\"\nHAVING (COUNT(1) > 0);";

        Assert.True(PostgresParser.NestingTokenUpperBound(sql) <= PostgresParser.InlineNestingTokens);
    }
}
