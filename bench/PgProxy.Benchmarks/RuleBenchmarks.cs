using System.Globalization;
using System.Net;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Rules;

namespace PgProxy.Benchmarks;

/// <summary>
/// The rule engine's decision for one query (issue 13's micro-benchmark: the warm path under 200 ns with 0 B). Warm is
/// a cache hit, as for an application sending the same statement again: 20 <c>query</c> rules that do not match
/// pgbench's select; the same with a rule on the user and the client (so the key holds them too); a rule that
/// rewrites every query (a hit that replays a rewrite and a <c>log</c> rule, with the intercept log off); and the
/// Tableau seed query (about 140 characters: the key's hash and comparison grow with the text). Cold is a text never
/// seen: the 20 rules' patterns run on it and the decision is cached.
/// </summary>
[MemoryDiagnoser]
public class RuleBenchmarks
{
    private const string PgbenchSelect = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;";

    private const string TableauQuery = "SELECT COUNT(DISTINCT \"crm_data_source\".\"Set of Customers\") AS \"ctd:Set of Customers:ok\"\n"
        + "FROM \"crm_dim\".\"crm_data_source\" \"crm_data_source\"\n"
        + "HAVING (COUNT(1) > 0);";

    private const string TwentyRules = """
        - {name: r1, match: {query: 'pg_sleep'}, refuse: {}}
        - {name: r2, match: {query: 'COUNT\(DISTINCT "\w+"\."visitor"'}, rewrite: x}
        - {name: r3, match: {query: 'dblink'}, refuse: {}}
        - {name: r4, match: {query: 'lo_import|lo_export'}, refuse: {}}
        - {name: r5, match: {query: 'pg_read_file'}, refuse: {}}
        - {name: r6, match: {query: 'COPY .* PROGRAM'}, refuse: {}}
        - {name: r7, match: {query: 'ALTER SYSTEM'}, refuse: {}}
        - {name: r8, match: {query: 'hll_'}, tag: hll}
        - {name: r9, match: {query: 'tableau_'}, tag: t}
        - {name: r10, match: {query: 'WITH RECURSIVE'}, log: true}
        - {name: r11, match: {query: 'FOR UPDATE NOWAIT'}, log: true}
        - {name: r12, match: {query: 'LIMIT 100000'}, log: true}
        - {name: r13, match: {query: 'crosstab'}, log: true}
        - {name: r14, match: {query: 'generate_series'}, refuse: {}}
        - {name: r15, match: {query: 'pg_terminate_backend'}, refuse: {}}
        - {name: r16, match: {query: 'set_config'}, log: true}
        - {name: r17, match: {query: 'current_setting'}, log: true}
        - {name: r18, match: {query: 'txid_current'}, log: true}
        - {name: r19, match: {query: '(?i)drop\s+table'}, refuse: {}}
        - {name: r20, match: {query: 'pgbench_history_old'}, rewrite: pgbench_history}
        """;

    private readonly RuleSubject subject = new("bench", "bench", "pgbench", IPAddress.Parse("::ffff:10.1.2.3"));
    private readonly ILogger log = NullLogger.Instance;
    private RuleSet twenty = null!;
    private RuleSet twentyBySession = null!;
    private RuleSet rewriting = null!;
    private RuleSet compareTwenty = null!;
    private RuleSet compareRewrite = null!;
    private string[] distinct = null!;
    private int next;

    // Copies with their own identity, as a query decoded from a new message would be: the hit must hash and compare
    // the text, not find the same reference.
    private string pgbench = null!;
    private string tableau = null!;

    [GlobalSetup]
    public void Setup()
    {
        twenty = Build(TwentyRules);
        twentyBySession = Build(TwentyRules + "\n- {name: by-session, match: {user: [app], client: [10.0.0.0/8]}, tag: app}");
        rewriting = Build("- {name: rename, match: {query: pgbench_accounts}, rewrite: accounts}\n- {name: audit, match: {}, log: true}");

        // bench/compare.sh's rules-20 and rules-rewrite instances.
        compareTwenty = Build(string.Join('\n', Enumerable.Range(1, 20).Select(n => $"- {{name: no-match-{n}, match: {{query: 'FROM\\s+orders_{n}\\b'}}, refuse: {{}}}}")));
        compareRewrite = Build("- {name: rewrite-all, match: {query: 'SELECT abalance'}, rewrite: 'SELECT /* rewritten */ abalance'}");
        pgbench = new string(PgbenchSelect.AsSpan());
        tableau = new string(TableauQuery.AsSpan());
        foreach (RuleSet rules in new[] { twenty, twentyBySession, rewriting })
        {
            rules.Evaluate(PgbenchSelect, subject, QueryProtocol.Extended, log, 1);
            rules.Evaluate(TableauQuery, subject, QueryProtocol.Simple, log, 1);
        }

        // More distinct texts than the cache holds: cycling through them always misses.
        distinct = [.. Enumerable.Range(0, 3 * RuleSet.CacheCapacity).Select(i => string.Create(CultureInfo.InvariantCulture, $"SELECT abalance FROM pgbench_accounts WHERE aid = {i};"))];
    }

    [Benchmark(Description = "Warm: 20 query rules, pgbench select")]
    public RuleDecision WarmTwenty() => twenty.Evaluate(pgbench, subject, QueryProtocol.Extended, log, 1);

    [Benchmark(Description = "Warm: 20 query rules + user/client rule")]
    public RuleDecision WarmBySession() => twentyBySession.Evaluate(pgbench, subject, QueryProtocol.Extended, log, 1);

    [Benchmark(Description = "Warm: a rewrite of every query")]
    public RuleDecision WarmRewrite() => rewriting.Evaluate(pgbench, subject, QueryProtocol.Extended, log, 1);

    [Benchmark(Description = "Warm: 20 query rules, Tableau query")]
    public RuleDecision WarmTableau() => twenty.Evaluate(tableau, subject, QueryProtocol.Simple, log, 1);

    [Benchmark(Description = "Cold: 20 query rules, a text never seen")]
    public RuleDecision Cold() => twenty.Evaluate(NextDistinct(), subject, QueryProtocol.Simple, log, 1);

    [Benchmark(Description = "Cold: compare.sh's 20 rules, a text never seen")]
    public RuleDecision ColdCompareTwenty() => compareTwenty.Evaluate(NextDistinct(), subject, QueryProtocol.Simple, log, 1);

    [Benchmark(Description = "Cold: compare.sh's rewrite, a text never seen")]
    public RuleDecision ColdCompareRewrite() => compareRewrite.Evaluate(NextDistinct(), subject, QueryProtocol.Simple, log, 1);

    private string NextDistinct()
    {
        string text = distinct[next];
        next = (next + 1) % distinct.Length;
        return text;
    }

    private static RuleSet Build(string rules)
    {
        string yaml = "instances:\n  - listen: {name: bench, host: 127.0.0.1, port: 6432}\n    redirect: {name: db, host: 127.0.0.1, port: 5432}\n    rules:\n"
            + string.Join('\n', rules.Split('\n').Select(line => "      " + line));
        ProxyConfig config = ConfigLoader.Parse(yaml, Path.GetTempPath(), "bench.yml");
        return RuleSet.Build(config.Instances[0].Rules, config.Settings);
    }
}
