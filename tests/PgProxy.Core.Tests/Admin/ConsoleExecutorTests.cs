using PgProxy.Core.Admin;
using PgProxy.Core.Configuration;
using PgProxy.Core.Hosting;
using PgProxy.Core.Interception;
using PgProxy.Core.Plugins;
using PgProxy.Abstractions;
using PgProxy.Core.Rules;
using PgProxy.Core.Tests.Rules;
using PgProxy.Core.Statistics;

namespace PgProxy.Core.Tests.Admin;

/// <summary>What each command returns and does, against a proxy that records what is done to it.</summary>
public sealed class ConsoleExecutorTests
{
    private readonly FakeConsoleHost host = new();

    private ConsoleResult Run(string command) => host.Executor().ExecuteAsync(ConsoleCommandParser.Parse(command), CancellationToken.None).GetAwaiter().GetResult();

    private ConsoleException Fails(string command) => Assert.Throws<ConsoleException>(() => Run(command));

    [Fact]
    public void Every_command_with_rows_returns_the_catalog_columns_and_rows_that_fit_them()
    {
        host.SessionList.Add(FakeConsoleHost.Session(1, SessionState.Active));
        foreach (ConsoleCommandInfo info in ConsoleCatalog.All.Where(c => c.Columns is not null))
        {
            ConsoleResult result = Run(info.Syntax.Split(" [", StringSplitOptions.None)[0]);
            Assert.Equal(info.Columns, result.Columns);
            Assert.All(result.Rows, row => Assert.Equal(info.Columns!.Count, row.Count));
        }
    }

    [Fact]
    public void Show_pools_has_a_row_per_pool_sorted_with_its_counts()
    {
        host.PoolList.Add(new PoolView("proxy", "web", "shop", new PgProxy.Core.Pooling.PoolCounts(2, 1, 3, TimeSpan.FromMilliseconds(1500), 4, 1)));
        host.PoolList.Add(new PoolView("proxy", "app", "shop", new PgProxy.Core.Pooling.PoolCounts(1, 0, 0, TimeSpan.Zero, 1, 0)));

        ConsoleResult result = Run("SHOW POOLS");

        Assert.Equal(
            [
                ["proxy", "app", "shop", "1", "0", "1", "0", "1", "0"],
                ["proxy", "web", "shop", "2", "3", "2", "1", "4", "1500"],
            ],
            result.Rows);
    }

    [Fact]
    public void Show_help_lists_every_command_in_catalog_order()
    {
        Assert.Equal(ConsoleCatalog.All.Select(c => c.Syntax), Run("SHOW HELP").Rows.Select(row => row[0]));
    }

    [Fact]
    public void Show_sessions_orders_by_id_and_names_states_as_pg_stat_activity()
    {
        host.SessionList.AddRange(
        [
            FakeConsoleHost.Session(9, SessionState.Waiting),
            FakeConsoleHost.Session(2, SessionState.IdleInTransaction),
            FakeConsoleHost.Session(5, SessionState.Active) with { ServerTls = null, ClientTls = true },
        ]);

        ConsoleResult result = Run("SHOW SESSIONS");

        Assert.Equal(["2", "5", "9"], result.Rows.Select(row => row[0]));
        Assert.Equal(["idle in transaction", "active", "waiting"], result.Rows.Select(row => row[8]));
        Assert.Equal(["on", null], result.Rows[1].Skip(6).Take(2));
        Assert.Equal("2026-01-02 03:04:05.678+00", result.Rows[0][11]);
    }

    [Fact]
    public void Show_instances_gives_addresses_modes_sessions_and_plugins()
    {
        host.Config = host.Config with
        {
            Instances =
            [
                host.Config.Instances[0] with
                {
                    Intercept = new InterceptConfig([new("tableau_hll", "rewrite_query", 1), new("tagger", "tag", 2)], [], [new("tableau_hll", "mask_rows", 3)]),
                    UpstreamTls = new UpstreamTlsConfig { Mode = UpstreamTlsMode.VerifyFull },
                },
            ],
        };
        host.SessionList.AddRange([FakeConsoleHost.Session(1, SessionState.Idle), FakeConsoleHost.Session(2, SessionState.Idle, "other")]);

        IReadOnlyList<string?> row = Assert.Single(Run("SHOW INSTANCES").Rows);

        Assert.Equal(["proxy", "127.0.0.1:6432", "postgresql", "db.internal:5432", "disable", "verify-full", "1", "0", "tableau_hll, tagger"], row);
    }

    [Fact]
    public void Plugins_have_their_columns_and_no_rows_without_plugins()
    {
        Assert.Empty(Run("SHOW RULES").Rows);
        Assert.Empty(Run("SHOW PLUGINS").Rows);
    }

    [Fact]
    public void Show_plugins_adds_up_what_each_plugin_entries_counted_on_every_instance()
    {
        host.Config = host.Config with { Instances = [host.Config.Instances[0], host.Config.Instances[0] with { Listen = new EndpointConfig("other", "127.0.0.1", 6433) }] };
        host.Plugins.AddRange([new LoadedPlugin("tableau_hll", PluginKind.SourceFile, "/etc/pgproxy/plugins/tableau_hll.cs"), new LoadedPlugin("idle", PluginKind.Assembly, "/etc/pgproxy/plugins/idle.dll")]);
        var interceptor = new NothingInterceptor();
        InstanceInterceptors Of(string plugin) => new(
            [new NamedInterceptor<IQueryInterceptor>($"{plugin}.rewrite_query", interceptor) { Plugin = plugin }],
            [],
            [new NamedInterceptor<IResponseInterceptor>($"{plugin}.mask", interceptor) { Plugin = plugin }],
            TimeSpan.FromSeconds(5),
            failurePolicy: null);
        InstanceInterceptors proxy = Of("tableau_hll");
        InstanceInterceptors other = Of("tableau_hll");
        host.Interceptors["proxy"] = proxy;
        host.Interceptors["other"] = other;

        // 4 calls begun at least 250 µs ago each: the mean comes from Stopwatch ticks, whatever the machine's frequency.
        long now = System.Diagnostics.Stopwatch.GetTimestamp() - (System.Diagnostics.Stopwatch.Frequency / 4000);
        proxy.Queries[0].Counters.Called(now);
        proxy.Responses[0].Counters.Called(now);
        proxy.Responses[0].Counters.Failed();
        other.Queries[0].Counters.Called(now);
        other.Queries[0].Counters.TimedOut();
        other.Queries[0].Counters.Called(now);
        InterceptorCounts counted = proxy.CountsOf("tableau_hll").Add(other.CountsOf("tableau_hll"));

        IReadOnlyList<IReadOnlyList<string?>> rows = Run("SHOW PLUGINS").Rows;

        Assert.Equal(2, rows.Count);
        Assert.Equal(["tableau_hll", "source file", "/etc/pgproxy/plugins/tableau_hll.cs", "4", "1", "1"], rows[0].Take(6));
        Assert.Equal(counted.MeanMicroseconds.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture), rows[0][6]);
        Assert.InRange(double.Parse(rows[0][6]!, System.Globalization.CultureInfo.InvariantCulture), 250, 60_000_000);
        Assert.Equal(["idle", "assembly", "/etc/pgproxy/plugins/idle.dll", "0", "0", "0", "0.0"], rows[1]);
    }

    [Fact]
    public void Show_queries_never_shows_a_password_literal_even_if_the_normalized_text_kept_one()
    {
        // Normalize replaces every constant; a text that still held one (a parser change, say) is redacted all the same.
        var shape = new QueryShape(0x123, "0000000000000123", "ALTER ROLE app PASSWORD 'kept-secret'", "ALTER ROLE app PASSWORD 'kept-secret'");
        host.Statistics.Record(new QueryKey("proxy", "sales", "app", 0x123), shape, 1000, 0, failed: false, DateTimeOffset.UnixEpoch);

        string? text = Assert.Single(Run("SHOW QUERIES").Rows)[^1];

        Assert.Equal("ALTER ROLE app PASSWORD " + PgProxy.Sql.PasswordRedaction.Marker, text);
    }

    [Fact]
    public void Show_rules_gives_the_counters_of_the_rules_in_force_and_show_instances_their_number()
    {
        RuleSet rules = RuleSets.Build("- {name: no-drop, match: {statement: ddl}, refuse: {message: no}}\n- {name: audit, match: {}, log: true, mode: log-only}");
        host.Rules["proxy"] = rules;
        RuleSets.Evaluate(rules, "DROP TABLE t");
        RuleSets.Evaluate(rules, "SELECT 1");

        ConsoleResult result = Run("SHOW RULES");

        Assert.Equal(["proxy", "rule", "no-drop", "1", "1", "0", "1", "0"], result.Rows[0]);
        Assert.Equal(["proxy", "rule", "audit", "1", "0", "1", "0", "0"], result.Rows[1]);
        Assert.Equal("2", Assert.Single(Run("SHOW INSTANCES").Rows)[7]);
    }

    [Fact]
    public void Show_rules_gives_a_row_per_mask_after_the_rules_and_show_stats_the_results_masked()
    {
        ProxyConfig config = RuleSets.Load(RuleSets.Config("- {name: audit, match: {}, log: true}").Replace(
            "    rules:", "    masks:\n      - {name: emails, columns: [t.email], with: email}\n      - {name: notes, columns: [t.note], mode: log-only}\n    rules:", StringComparison.Ordinal));
        host.Config = config;
        RuleSet rules = RuleSet.Build(config.Instances[0].Rules, config.Instances[0].Masks, config.Settings);
        host.Rules["proxy"] = rules;
        RuleCounters emails = rules.Masks.Masks[0].Counters;
        emails.CountMatched();
        emails.CountApplied();
        emails.CountMatched();
        emails.CountApplied();
        emails.CountRefusal();
        rules.Masks.Masks[1].Counters.CountMatched();
        rules.Masks.Masks[1].Counters.CountLogOnlyHit();

        ConsoleResult result = Run("SHOW RULES");

        Assert.Equal(3, result.Rows.Count);
        Assert.Equal(["proxy", "rule", "audit", "0", "0", "0", "0", "0"], result.Rows[0]);
        Assert.Equal(["proxy", "mask", "emails", "2", "2", "0", "1", "0"], result.Rows[1]);
        Assert.Equal(["proxy", "mask", "notes", "1", "0", "1", "0", "0"], result.Rows[2]);
        Assert.Equal("2", Assert.Single(Run("SHOW STATS").Rows)[9]);
    }

    [Fact]
    public void Show_queries_gives_each_entry_ordered_and_limited_with_times_in_milliseconds()
    {
        DateTimeOffset at = new(2026, 1, 2, 3, 4, 5, TimeSpan.Zero);
        var select = new QueryShape(0xabc, "0000000000000abc", "SELECT $1", "SELECT 1");
        var update = new QueryShape(0xdef, "0000000000000def", "UPDATE t SET a = $1", "UPDATE t SET a = 2");
        for (int i = 0; i < 3; i++)
        {
            host.Statistics.Record(new QueryKey("proxy", "sales", "app", 0xabc), select, 1000, 1, failed: false, at);
        }

        host.Statistics.Record(new QueryKey("proxy", "sales", "app", 0xdef), update, 9000, 4, failed: false, at.AddSeconds(1));
        host.Statistics.Record(new QueryKey("proxy", "sales", "app", 0xdef), update, 500, 0, failed: true, at.AddSeconds(2));

        ConsoleResult byTotal = Run("SHOW QUERIES");
        ConsoleResult byCalls = Run("show queries order by calls limit 1");

        Assert.Equal(["0000000000000def", "0000000000000abc"], byTotal.Rows.Select(row => row[3]));
        IReadOnlyList<string?> row = byTotal.Rows[0];
        Assert.Equal(["proxy", "sales", "app", "0000000000000def", "2", "9.500", "4.750", "0.500", "9.000"], row.Take(9));
        Assert.Equal(["4", "1", "0", "0", "2026-01-02 03:04:06.000+00", "2026-01-02 03:04:07.000+00", "UPDATE t SET a = $1"], row.Skip(12));
        Assert.Equal("0000000000000abc", Assert.Single(byCalls.Rows)[3]);
        Assert.Equal("3", byCalls.Rows[0][4]);
    }

    [Fact]
    public void Show_stats_adds_the_open_sessions_to_the_totals_and_reset_clears_them()
    {
        InstanceStatistics totals = host.Statistics.ForInstance("proxy");
        totals.SessionEnded(10, 200);
        totals.TransactionEnded();
        totals.StatementEnded(2000, null);
        totals.StatementEnded(4000, "42P01");
        host.SessionList.Add(FakeConsoleHost.Session(7, SessionState.Idle));
        host.SessionList.Add(FakeConsoleHost.Session(8, SessionState.Active) with { Console = true });

        IReadOnlyList<string?> row = Assert.Single(Run("SHOW STATS").Rows);

        Assert.Equal(["proxy", "2", "1", "2", "110", "2200", "42:1", "0", "0", "0", "3.000"], row.Take(11));
        Assert.Equal("RESET", Run("RESET STATS").Tag);
        Assert.Equal(["proxy", "1", "0", "0", "100", "2000", ""], Assert.Single(Run("SHOW STATS").Rows).Take(7));
    }

    [Fact]
    public void Kill_and_cancel_act_on_the_session_or_say_there_is_none()
    {
        host.SessionList.Add(FakeConsoleHost.Session(4, SessionState.Active));

        Assert.Equal("KILL", Run("KILL 4").Tag);
        Assert.Equal("CANCEL", Run("CANCEL 4").Tag);
        Assert.Equal("42704", Fails("KILL 5").SqlState);
        Assert.Equal("42704", Fails("CANCEL 5").SqlState);
        Assert.Equal([4L, 5L], host.Killed);
        Assert.Equal([4L, 5L], host.Cancelled);
    }

    [Fact]
    public void Killing_its_own_session_waits_until_the_answer_is_out()
    {
        host.SessionList.Add(FakeConsoleHost.Session(1, SessionState.Active));

        ConsoleResult result = Run("KILL 1");

        Assert.Equal("KILL", result.Tag);
        Assert.Empty(host.Killed);
        result.AfterResponse!();
        Assert.Equal([1L], host.Killed);
    }

    [Fact]
    public void Cancel_of_a_session_without_a_server_connection_is_55000()
    {
        host.SessionList.Add(FakeConsoleHost.Session(4, SessionState.Idle));
        host.NextCancel = CancelOutcome.NoServer;

        ConsoleException error = Fails("CANCEL 4");

        Assert.Equal("55000", error.SqlState);
        Assert.Contains("no server connection", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reload_runs_the_owners_reload_and_a_failure_lists_every_error_on_its_own_line()
    {
        Assert.Equal("RELOAD", Run("RELOAD").Tag);

        host.NextReload = new ReloadResult { Generation = 3, Errors = ["config.yml:4:9: instances[0].listen.port: expected an integer", "config.yml:9:1: unknown key 'x'"] };
        ConsoleException error = Fails("reload");

        Assert.Equal("F0000", error.SqlState);
        Assert.Equal(
            "reload failed; the running configuration (generation 3) stays:\nconfig.yml:4:9: instances[0].listen.port: expected an integer\nconfig.yml:9:1: unknown key 'x'",
            error.Message);
        Assert.Equal(2, host.Reloads);
    }

    [Fact]
    public void Pause_resume_and_reconnect_steer_the_pools_named_and_an_unknown_instance_is_an_error()
    {
        host.PoolingInstances.Add("pooled");

        Assert.Equal("PAUSE", Run("PAUSE pooled").Tag);
        Assert.Equal("RESUME", Run("resume").Tag);
        Assert.Equal("RECONNECT", Run("RECONNECT pooled").Tag);
        ConsoleException unknown = Fails("PAUSE nowhere");

        Assert.Equal("42704", unknown.SqlState);
        Assert.Contains("\"nowhere\"", unknown.Message, StringComparison.Ordinal);
        Assert.Equal([(ConsoleCommandKind.Pause, "pooled"), (ConsoleCommandKind.Resume, null), (ConsoleCommandKind.Reconnect, "pooled"), (ConsoleCommandKind.Pause, "nowhere")], host.Steered);
    }

    [Fact]
    public void Shutdown_stops_only_once_its_answer_is_out_and_says_how()
    {
        ConsoleResult safe = Run("SHUTDOWN SAFE");
        ConsoleResult now = Run("SHUTDOWN");

        Assert.Equal("SHUTDOWN", safe.Tag);
        Assert.Empty(host.Stops);
        safe.AfterResponse!();
        now.AfterResponse!();
        Assert.Equal([true, false], host.Stops);
    }

    [Fact]
    public void Reset_stats_is_accepted()
    {
        Assert.Equal("RESET", Run("RESET STATS").Tag);
    }

    [Fact]
    public void Show_version_and_the_reported_server_version_name_PgProxy()
    {
        Assert.Equal($"PgProxy {ConsoleExecutor.Version}", Assert.Single(Run("SHOW VERSION").Rows)[0]);
        Assert.Matches(@"^\d+\.\d+ \(PgProxy \d+\.\d+\.\d+\)$", ConsoleExecutor.ServerVersion);
    }

    /// <summary>An interceptor never called: the test sets its entries' counters itself.</summary>
    private sealed class NothingInterceptor : IQueryInterceptor, IResponseInterceptor
    {
        public ResponseKinds Kinds => ResponseKinds.All;

        public ValueTask<QueryDecision> InterceptQueryAsync(QueryMessage query, ISessionContext session, CancellationToken cancellationToken) => new(QueryDecision.Continue);

        public ValueTask InterceptResponseAsync(ResponseMessage message, ISessionContext session, CancellationToken cancellationToken) => default;
    }
}
