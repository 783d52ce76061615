using System.Net;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Abstractions;
using PgProxy.Plugins.TableauHll;
using PgProxy.Plugins.TableauHll.Analysis;

namespace PgProxy.Benchmarks;

/// <summary>
/// The TableauHll plugin on the seed's first query: cold (parse, scope analysis and rewrite of a text never seen),
/// warm (the analysis and the column types cached, as for a dashboard sending the same query again), and queries it
/// leaves alone (pgbench's, which it skips without parsing; a distinct count over a column that is not hll).
/// </summary>
[MemoryDiagnoser]
public class TableauHllBenchmarks
{
    private const string SeedQuery = "SELECT COUNT(DISTINCT \"crm_data_source\".\"Set of Customers\") AS \"ctd:Set of Customers:ok\"\n"
        + "FROM \"crm_dim\".\"crm_data_source\" \"crm_data_source\"\n"
        + "HAVING (COUNT(1) > 0);";

    private const string PgbenchQuery = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;";

    private const string NotHllQuery = "SELECT COUNT(DISTINCT \"crm_data_source\".\"Campaign Name\") AS \"ctd:Campaign Name:ok\"\n"
        + "FROM \"crm_dim\".\"crm_data_source\" \"crm_data_source\"\n"
        + "HAVING (COUNT(1) > 0);";

    private readonly BenchmarkSession session = new();
    private readonly QueryMessage seed = new(QueryMessageKind.SimpleQuery, SeedQuery, null, []);
    private readonly QueryMessage pgbench = new(QueryMessageKind.Parse, PgbenchQuery, "", []);
    private readonly QueryMessage notHll = new(QueryMessageKind.SimpleQuery, NotHllQuery, null, []);
    private IColumnTypes columnTypes = null!;
    private int coldCounter;

    [GlobalSetup]
    public void Setup()
    {
        // One call of each fills the caches (the column types through the stub's metadata answer).
        TableauHll.RewriteQuery(seed, session, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        TableauHll.RewriteQuery(notHll, session, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        columnTypes = TableauHll.ColumnTypes.GetAsync(QueryAnalyzer.Analyze(SeedQuery).Relations, session, CancellationToken.None).AsTask().GetAwaiter().GetResult();
    }

    /// <summary>A text never seen before: parse, analysis and rewrite (the column types are known).</summary>
    [Benchmark]
    public string Cold()
    {
        // A different comment each time defeats every cache without changing what is parsed.
        string text = SeedQuery + " -- " + (coldCounter++).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return TableauHll.Apply(text, QueryAnalyzer.Analyze(text), columnTypes);
    }

    [Benchmark(Baseline = true)]
    public QueryDecision Warm() => Completed(TableauHll.RewriteQuery(seed, session, CancellationToken.None));

    [Benchmark]
    public QueryDecision LeftAlonePgbench() => Completed(TableauHll.RewriteQuery(pgbench, session, CancellationToken.None));

    [Benchmark]
    public QueryDecision LeftAloneNotHll() => Completed(TableauHll.RewriteQuery(notHll, session, CancellationToken.None));

    /// <summary>With every cache warm the plugin answers synchronously; anything else would be a bug worth seeing.</summary>
    private static QueryDecision Completed(ValueTask<QueryDecision> decision) =>
        decision.IsCompletedSuccessfully ? decision.Result : throw new InvalidOperationException("the warm path went asynchronous");

    /// <summary>A session whose metadata answers say that crm_dim.crm_data_source has two hll columns.</summary>
    private sealed class BenchmarkSession : ISessionContext
    {
        public string InstanceName => "bench";

        public EndPoint? ClientAddress => null;

        public string User => "tableau";

        public string Database => "crm";

        public string? ApplicationName => "tableau";

        public IReadOnlyDictionary<string, string> StartupParameters { get; } = new Dictionary<string, string>();

        public Encoding ClientEncoding => Encoding.UTF8;

        public TransactionStatus TransactionStatus => TransactionStatus.Idle;

        public IDictionary<string, object?> State { get; } = new Dictionary<string, object?>();

        public ILogger Logger => NullLogger.Instance;

        public Task<UpstreamQueryResult> QueryUpstreamAsync(string sql, CancellationToken cancellationToken = default) =>
            Task.FromResult(new UpstreamQueryResult(
                ["ord", "attname", "is_hll"],
                [["1", "Set of Customers", "t"], ["1", "Set of Unique Clicks", "t"], ["1", "Campaign Name", "f"]]));
    }
}
