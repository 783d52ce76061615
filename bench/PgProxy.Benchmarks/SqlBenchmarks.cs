using BenchmarkDotNet.Attributes;
using PgProxy.Sql;

namespace PgProxy.Benchmarks;

/// <summary>
/// PgProxy.Sql on the query of the TableauHll seed (a Tableau count-distinct): what a SQL-aware plugin pays on a cold
/// query (parse, scan, fingerprint, each a call into libpg_query) and on a warm one (a <see cref="ParseCache{TValue}"/> hit).
/// </summary>
[MemoryDiagnoser]
public class SqlBenchmarks
{
    private const string TableauQuery =
        "SELECT COUNT(DISTINCT \"crm_data_source\".\"Set of Customers\") AS \"ctd:Set of Customers:ok\"\n"
        + "FROM \"crm_dim\".\"crm_data_source\" \"crm_data_source\"\n"
        + "HAVING (COUNT(1) > 0);";

    private readonly ParseCache<PgQuery.ParseResult> cache = new(1024);

    // A copy with its own identity, as a query decoded from a new message would be: the hit must hash and compare
    // the text, not find the same reference.
    private string sameQueryAgain = null!;

    [GlobalSetup]
    public void Setup()
    {
        PostgresParser.EnsureAvailable();
        cache.GetOrAdd(TableauQuery, static sql => PostgresParser.Parse(sql));
        sameQueryAgain = new string(TableauQuery.AsSpan());
    }

    [Benchmark(Description = "Parse (cold)")]
    public PgQuery.ParseResult Parse() => PostgresParser.Parse(TableauQuery);

    [Benchmark(Description = "Scan")]
    public SqlTokens Scan() => PostgresParser.Scan(TableauQuery);

    [Benchmark(Description = "Fingerprint")]
    public SqlFingerprint Fingerprint() => PostgresParser.Fingerprint(TableauQuery);

    [Benchmark(Description = "ParseCache hit")]
    public PgQuery.ParseResult CacheHit() => cache.GetOrAdd(sameQueryAgain, static sql => PostgresParser.Parse(sql));
}
