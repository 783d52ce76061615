using System.Net;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Rules;

namespace PgProxy.Core.Tests.Rules;

/// <summary>
/// Decisions are cached by text and by what the rules look at; a repeated query costs a lookup that allocates nothing;
/// a new rule set (a reload) starts empty; the cache stays bounded.
/// </summary>
public sealed class RuleCacheTests
{
    private const string TwentyRules = """
        - {name: r1, match: {query: 'pg_sleep'}, refuse: {}}
        - {name: r2, match: {query: 'COUNT\(DISTINCT'}, rewrite: x}
        - {name: r3, match: {statement: [ddl]}, refuse: {}}
        - {name: r4, match: {tables: [secrets]}, refuse: {}}
        - {name: r5, match: {query: 'dblink'}, refuse: {}}
        - {name: r6, match: {query: 'lo_import'}, refuse: {}}
        - {name: r7, match: {query: 'pg_read_file'}, refuse: {}}
        - {name: r8, match: {query: 'COPY .* PROGRAM'}, refuse: {}}
        - {name: r9, match: {query: 'ALTER SYSTEM'}, refuse: {}}
        - {name: r10, match: {query: 'hll_'}, tag: hll}
        - {name: r11, match: {query: 'tableau'}, tag: t}
        - {name: r12, match: {query: 'WITH RECURSIVE'}, log: true}
        - {name: r13, match: {query: 'FOR UPDATE'}, log: true}
        - {name: r14, match: {query: 'LIMIT 100000'}, log: true}
        - {name: r15, match: {query: 'crosstab'}, log: true}
        - {name: r16, match: {query: 'generate_series\(1, *1000000'}, refuse: {}}
        - {name: r17, match: {query: 'pg_terminate_backend'}, refuse: {}}
        - {name: r18, match: {query: 'set_config'}, log: true}
        - {name: r19, match: {query: 'current_setting'}, log: true}
        - {name: r20, match: {query: 'txid_current'}, log: true}
        """;

    private const string PgbenchSelect = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;";

    [Fact]
    public void A_repeated_query_gets_the_same_decision_instance()
    {
        RuleSet rules = RuleSets.Build("- {name: rename, match: {query: old_t}, rewrite: new_t}");

        rules.Evaluate("SELECT * FROM old_t");
        RuleDecision second = rules.Evaluate(new string("SELECT * FROM old_t".AsSpan()));
        RuleDecision third = rules.Evaluate(new string("SELECT * FROM old_t".AsSpan()));

        Assert.Same(second, third);
        Assert.Equal(1, rules.CachedDecisions);
    }

    [Fact]
    public void A_text_is_cached_from_its_second_evaluation_so_one_off_texts_leave_the_cache_empty()
    {
        RuleSet rules = RuleSets.Build("- {name: rename, match: {query: old_t}, rewrite: new_t}");

        for (int aid = 0; aid < 100; aid++)
        {
            Assert.Equal($"SELECT * FROM new_t WHERE aid = {aid}", rules.Result($"SELECT * FROM old_t WHERE aid = {aid}"));
        }

        Assert.Equal(0, rules.CachedDecisions);
        Assert.Equal("SELECT * FROM new_t WHERE aid = 7", rules.Result("SELECT * FROM old_t WHERE aid = 7"));
        Assert.Equal(1, rules.CachedDecisions);
        Assert.Equal(101, rules.Rules[0].Counters.Applied);
    }

    [Fact]
    public void Only_what_the_rules_look_at_separates_entries()
    {
        RuleSet byText = RuleSets.Build("- {name: r, match: {query: x}, tag: t}");
        RuleSet byUser = RuleSets.Build("- {name: r, match: {user: [app]}, tag: t}");
        var other = new RuleSubject("other", "crm", "psql", IPAddress.Parse("192.168.1.1"));

        // A text is cached from its second evaluation (see the test above): the first of each set only admits it.
        byText.Evaluate("SELECT x");
        byText.Evaluate("SELECT x");
        byText.Evaluate("SELECT x", other);
        byText.Evaluate("SELECT x", protocol: QueryProtocol.Extended);
        byUser.Evaluate("SELECT x");
        byUser.Evaluate("SELECT x");
        RuleDecision forOther = byUser.Evaluate("SELECT x", other);
        RuleDecision forOtherDatabase = byUser.Evaluate("SELECT x", RuleSets.App with { Database = "crm" });

        Assert.Equal(1, byText.CachedDecisions);
        Assert.Equal(2, byUser.CachedDecisions);
        Assert.True(forOther.IsUnchanged);
        Assert.False(forOtherDatabase.IsUnchanged);
    }

    [Fact]
    public void Client_and_protocol_separate_entries_when_a_rule_uses_them()
    {
        RuleSet rules = RuleSets.Build("""
            - {name: net, match: {client: [10.0.0.0/8]}, tag: internal, continue: true}
            - {name: parse, match: {protocol: extended}, tag: extended}
            """);

        rules.Evaluate("SELECT 1", protocol: QueryProtocol.Extended);
        Assert.Equal("/* extended */ /* internal */ SELECT 1", rules.Result("SELECT 1", protocol: QueryProtocol.Extended));
        Assert.Equal("/* internal */ SELECT 1", rules.Result("SELECT 1", protocol: QueryProtocol.Simple));
        Assert.Equal("SELECT 1", rules.Result("SELECT 1", RuleSets.App with { Client = IPAddress.Parse("8.8.8.8") }));
        Assert.Equal(3, rules.CachedDecisions);
    }

    [Fact]
    public void A_new_rule_set_from_a_reload_starts_with_an_empty_cache_and_new_counters()
    {
        ProxyConfig config = RuleSets.Load(RuleSets.Config("- {name: r, match: {query: x}, tag: t}"));
        RuleSet running = RuleSet.Build(config.Instances[0].Rules, config.Settings);
        running.Evaluate("SELECT x");
        running.Evaluate("SELECT x");

        RuleSet reloaded = RuleSet.Build(config.Instances[0].Rules, config.Settings);

        Assert.Equal(1, running.CachedDecisions);
        Assert.Equal(0, reloaded.CachedDecisions);
        Assert.Equal(0, reloaded.Rules[0].Counters.Matched);
    }

    [Fact]
    public void The_cache_is_bounded()
    {
        RuleSet rules = RuleSets.Build("- {name: r, match: {query: 'never'}, tag: t}");

        for (int index = 0; index <= RuleSet.CacheCapacity + 10; index++)
        {
            rules.Evaluate($"SELECT {index}");
            rules.Evaluate($"SELECT {index}");
        }

        Assert.InRange(rules.CachedDecisions, 1, RuleSet.CacheCapacity);
    }

    [Fact]
    public void A_hit_counts_and_logs_again()
    {
        RuleSet rules = RuleSets.Build("- {name: rename, match: {query: old_t}, rewrite: new_t}");
        var log = new ListLogger();

        rules.Evaluate("SELECT * FROM old_t", log: log);
        rules.Evaluate("SELECT * FROM old_t", log: log);

        Assert.Equal(2, rules.Rules[0].Counters.Applied);
        Assert.Equal(2, log.Entries.Count);
    }

    [Fact]
    public void The_warm_path_allocates_nothing()
    {
        // A generous rule-timeout: on a loaded machine a first match can stall past 100 ms, and a decision that timed
        // out is not cached, which this test would see as allocations of the cold path.
        const string settings = "rule-timeout: 10s";
        RuleSet rules = RuleSets.Build(TwentyRules + "\n- {name: by-user, match: {user: [app], client: [10.0.0.0/8]}, tag: app}", settings);
        RuleSet rewriting = RuleSets.Build("- {name: rename, match: {query: pgbench_accounts}, rewrite: accounts}\n- {name: audit, match: {}, log: true}", settings);
        string query = new(PgbenchSelect.AsSpan());
        RuleSubject subject = RuleSets.App with { Client = IPAddress.Parse("::ffff:10.1.2.3") };
        ILogger disabled = new DisabledLogger();
        rules.Evaluate(PgbenchSelect, subject);
        rewriting.Evaluate(PgbenchSelect, subject, log: disabled);
        // Warmed as long as it is measured: what the runtime allocates once on a path (its tiering, under load a
        // stall's timer) is not the path's cost; an allocation per call shows in the measured loop all the same.
        for (int index = 0; index < 10_000; index++)
        {
            rules.Evaluate(query, subject, QueryProtocol.Extended, disabled, 1);
            rewriting.Evaluate(query, subject, QueryProtocol.Simple, disabled, 1);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int index = 0; index < 10_000; index++)
        {
            rules.Evaluate(query, subject, QueryProtocol.Extended, disabled, 1);
            rewriting.Evaluate(query, subject, QueryProtocol.Simple, disabled, 1);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal("/* app */ " + PgbenchSelect.TrimEnd(';') + ";", rules.Result(PgbenchSelect, subject));
        Assert.Equal(20_001, rewriting.Rules[0].Counters.Applied);
    }

    [Fact]
    public void Sessions_on_many_threads_share_one_rule_set()
    {
        RuleSet rules = RuleSets.Build("- {name: rename, match: {query: old_t}, rewrite: new_t}\n- {name: no-ddl, match: {statement: [ddl]}, refuse: {}}");

        Parallel.For(0, 2_000, index =>
        {
            string sql = index % 2 == 0 ? $"SELECT {index % 50} FROM old_t" : $"DROP TABLE t{index % 50}";
            RuleDecision decision = rules.Evaluate(sql);
            Assert.Equal(index % 2 == 0 ? RuleOutcome.Rewritten : RuleOutcome.Refused, decision.Outcome);
        });

        Assert.Equal(1_000, rules.Rules[0].Counters.Applied);
        Assert.Equal(1_000, rules.Rules[1].Counters.Refusals);
    }

    /// <summary>An intercept log whose level is above every rule message's, as in production with the intercept log off.</summary>
    private sealed class DisabledLogger : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => false;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            throw new InvalidOperationException("not enabled");
    }
}
