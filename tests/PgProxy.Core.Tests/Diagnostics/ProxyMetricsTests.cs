using System.Diagnostics.Metrics;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Server;

namespace PgProxy.Core.Tests.Diagnostics;

/// <summary>
/// The engine's instruments as a listener sees them: one measurement per event, tagged listen, and gauges of what is
/// open now that are right whenever a listener starts reading.
/// </summary>
public sealed class ProxyMetricsTests : IDisposable
{
    private readonly ScopedMeterFactory factory = new();
    private readonly ProxyMetrics metrics;
    private readonly Recorder recorder;

    public ProxyMetricsTests()
    {
        metrics = new ProxyMetrics(factory);
        recorder = new Recorder(factory.Scope);
    }

    public void Dispose()
    {
        recorder.Dispose();
        metrics.Dispose();
        factory.Dispose();
    }

    [Fact]
    public void Every_per_instance_measurement_is_tagged_listen_and_never_instance()
    {
        metrics.SessionOpened("proxy");
        metrics.UpstreamConnectFailed("proxy");
        metrics.ClientError("proxy", "08001");
        metrics.QueryCompleted("proxy", 0.001);
        metrics.TransactionCompleted("proxy", 0.002);
        metrics.Rewritten("proxy", "tableau_hll");
        metrics.Refused("proxy", "no_drop");
        metrics.Masked("proxy", "ssn");
        metrics.PluginFailed("proxy", "tableau_hll");
        metrics.PluginTimedOut("proxy", "tableau_hll");
        metrics.SessionClosed("proxy", 1.5, 100, 200);

        Assert.Equal(13, recorder.Measurements.Count);
        Assert.All(recorder.Measurements, m => Assert.Equal("proxy", m.Tags["listen"]));
        Assert.All(recorder.Measurements, m => Assert.False(m.Tags.ContainsKey("instance")));
        Assert.Equal("08001", recorder.Single("pgproxy.errors").Tags["sqlstate"]);
        Assert.Equal("no_drop", recorder.Single("pgproxy.refusals").Tags["by"]);
        Assert.Equal("tableau_hll", recorder.Single("pgproxy.plugin.timeouts").Tags["plugin"]);
        Assert.Equal(
            [("client_to_server", 100.0), ("server_to_client", 200.0)],
            recorder.All("pgproxy.bytes").Select(m => ((string)m.Tags["direction"]!, m.Value)).Order());
    }

    [Fact]
    public void Pool_gauges_read_every_pools_counts_by_state_and_waits_are_a_histogram()
    {
        var counts = new PgProxy.Core.Pooling.PoolCounts(Active: 3, Idle: 2, Waiting: 4, LongestWait: TimeSpan.FromSeconds(1.5), Opened: 5, Closed: 0);
        metrics.ObservePools(() => [("proxy", "app", "shop", counts)]);
        metrics.PoolWaited("proxy", "app", "shop", 0.25);

        Assert.Equal(
            [("active", 3.0), ("waiting", 4.0)],
            recorder.ObserveAll("pgproxy.pool.clients").Select(m => ((string)m.Tags["state"]!, m.Value)).Order());
        Assert.Equal(
            [("active", 3.0), ("idle", 2.0)],
            recorder.ObserveAll("pgproxy.pool.servers").Select(m => ((string)m.Tags["state"]!, m.Value)).Order());
        Measurement longest = Assert.Single(recorder.ObserveAll("pgproxy.pool.wait.longest"));
        Assert.Equal((1.5, "proxy", "app", "shop"), (longest.Value, longest.Tags["listen"], longest.Tags["user"], longest.Tags["database"]));
        Assert.Equal(0.25, recorder.Single("pgproxy.pool.wait.duration").Value);
    }

    [Fact]
    public void A_login_is_in_flight_until_the_first_ReadyForQuery_and_then_counted_ok()
    {
        var state = new ServerProtocolState();
        using LoginMeasurement login = metrics.LoginStarted("proxy", state);
        Assert.Equal(1, recorder.Observe("pgproxy.logins.in_flight", "proxy"));

        state.OnReadyForQuery((byte)'I');

        // The ReadyForQuery ends the login on a thread-pool continuation; the session's end would end it too.
        Assert.True(SpinWait.SpinUntil(() => recorder.All("pgproxy.login.duration").Count == 1, TimeSpan.FromSeconds(10)));
        Assert.Equal("ok", recorder.Single("pgproxy.login.duration").Tags["result"]);
        Assert.Equal(0, recorder.Observe("pgproxy.logins.in_flight", "proxy"));
    }

    [Fact]
    public void A_session_that_ends_before_its_ReadyForQuery_counts_a_failed_login_once()
    {
        var state = new ServerProtocolState();
        LoginMeasurement login = metrics.LoginStarted("proxy", state);

        login.Dispose();
        login.Dispose();
        state.OnReadyForQuery((byte)'I');

        Measurement failed = recorder.Single("pgproxy.login.duration");
        Assert.Equal("failed", failed.Tags["result"]);
        Assert.Equal(0, recorder.Observe("pgproxy.logins.in_flight", "proxy"));
    }

    [Fact]
    public void Open_sessions_are_read_at_collection_so_a_late_listener_sees_the_sessions_opened_before_it()
    {
        recorder.Dispose();
        metrics.SessionOpened("proxy");
        metrics.SessionOpened("proxy");
        metrics.SessionOpened("other");
        metrics.SessionClosed("other", 0.1, 1, 1);

        using var late = new Recorder(factory.Scope);

        Assert.Equal(2, late.Observe("pgproxy.sessions.open", "proxy"));
        Assert.Equal(0, late.Observe("pgproxy.sessions.open", "other"));
    }

    [Fact]
    public void Session_states_come_from_the_registered_source()
    {
        Assert.Empty(recorder.ObserveAll("pgproxy.sessions.state"));

        metrics.ObserveSessionStates(() => [("proxy", "idle", 3), ("proxy", "active", 1)]);

        Assert.Equal(
            [("active", 1.0), ("idle", 3.0)],
            recorder.ObserveAll("pgproxy.sessions.state").Select(m => ((string)m.Tags["state"]!, m.Value)).Order());
    }

    [Fact]
    public void The_first_load_stamps_the_reload_gauges_and_each_reload_counts_by_result()
    {
        Assert.Empty(recorder.ObserveAll("pgproxy.reload.last_success"));
        double before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

        metrics.ConfigurationLoaded();
        Assert.Empty(recorder.All("pgproxy.reloads"));
        Assert.Equal(1, recorder.Observe("pgproxy.reload.last_success"));
        Assert.InRange(recorder.Observe("pgproxy.reload.last_timestamp"), before, before + 60);

        metrics.Reloaded(applied: true);
        metrics.Reloaded(applied: false);

        Assert.Equal(["failed", "ok"], recorder.All("pgproxy.reloads").Select(m => (string)m.Tags["result"]!).Order());
        Assert.Equal(0, recorder.Observe("pgproxy.reload.last_success"));
    }

    [Fact]
    public void Statistics_evictions_and_query_log_drops_are_read_from_their_sources()
    {
        Assert.Empty(recorder.ObserveAll("pgproxy.query_log.dropped"));
        long dropped = 3;

        metrics.ObserveStatistics(() => 7, () => dropped);
        dropped = 4;

        Assert.Equal(7, recorder.Observe("pgproxy.stats.evictions"));
        Assert.Equal(4, recorder.Observe("pgproxy.query_log.dropped"));
    }

    [Fact]
    public void Build_info_is_one_with_the_version()
    {
        Measurement info = Assert.Single(recorder.ObserveAll("pgproxy.build.info"));

        Assert.Equal(1, info.Value);
        Assert.Matches(@"^\d+\.\d+\.\d+$", (string)info.Tags["version"]!);
        Assert.True(info.Tags.ContainsKey("revision"));
        Assert.StartsWith(".NET ", (string)info.Tags["runtime"]!, StringComparison.Ordinal);
    }

    [Fact]
    public void The_gc_heap_is_the_size_the_last_collection_left()
    {
        GC.Collect();

        Measurement heap = Assert.Single(recorder.ObserveAll("pgproxy.gc.heap"));

        Assert.InRange(heap.Value, 1d, GC.GetGCMemoryInfo().HeapSizeBytes * 2d);
    }

    [Fact]
    public void Histograms_carry_the_documented_buckets()
    {
        Instrument query = recorder.Instruments.Single(i => i.Name == "pgproxy.query.duration");

        Assert.Equal("s", query.Unit);
        Assert.Equal(ProxyMetrics.StatementBuckets, ((Histogram<double>)query).Advice!.HistogramBucketBoundaries);
    }

    public sealed record Measurement(string Instrument, double Value, IReadOnlyDictionary<string, object?> Tags);

    /// <summary>Creates the meter of one ProxyMetrics with a scope of its own, so other tests' meters are not heard.</summary>
    private sealed class ScopedMeterFactory : IMeterFactory
    {
        private readonly List<Meter> meters = [];

        public object Scope { get; } = new();

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(new MeterOptions(options.Name) { Version = options.Version, Scope = Scope });
            meters.Add(meter);
            return meter;
        }

        public void Dispose() => meters.ForEach(m => m.Dispose());
    }

    /// <summary>Every measurement of the meters of one scope, in order; observable instruments on demand.</summary>
    private sealed class Recorder : IDisposable
    {
        private readonly MeterListener listener = new();
        private readonly List<Measurement> measurements = [];
        private readonly List<Instrument> instruments = [];
        private readonly List<Measurement> observed = [];

        public Recorder(object scope)
        {
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Scope == scope)
                {
                    lock (instruments)
                    {
                        instruments.Add(instrument);
                    }

                    l.EnableMeasurementEvents(instrument);
                }
            };
            listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
            listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
            listener.Start();
        }

        public IReadOnlyList<Measurement> Measurements
        {
            get
            {
                lock (measurements)
                {
                    return [.. measurements.Where(m => !m.Instrument.StartsWith("observed:", StringComparison.Ordinal))];
                }
            }
        }

        public IReadOnlyList<Instrument> Instruments
        {
            get
            {
                lock (instruments)
                {
                    return [.. instruments];
                }
            }
        }

        public IReadOnlyList<Measurement> All(string instrument) => [.. Measurements.Where(m => m.Instrument == instrument)];

        public Measurement Single(string instrument) => Assert.Single(All(instrument));

        /// <summary>Collects the observable instruments now and returns what <paramref name="instrument"/> reported.</summary>
        public IReadOnlyList<Measurement> ObserveAll(string instrument)
        {
            lock (measurements)
            {
                measurements.RemoveAll(m => m.Instrument.StartsWith("observed:", StringComparison.Ordinal));
            }

            listener.RecordObservableInstruments();
            lock (measurements)
            {
                return [.. measurements.Where(m => m.Instrument == "observed:" + instrument).Select(m => m with { Instrument = instrument })];
            }
        }

        public double Observe(string instrument, string? listen = null) =>
            Assert.Single(ObserveAll(instrument), m => listen is null || Equals(m.Tags.GetValueOrDefault("listen"), listen)).Value;

        public void Dispose() => listener.Dispose();

        private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string name = instrument.IsObservable ? "observed:" + instrument.Name : instrument.Name;
            var measurement = new Measurement(name, value, new Dictionary<string, object?>(tags.ToArray(), StringComparer.Ordinal));
            lock (measurements)
            {
                measurements.Add(measurement);
            }
        }
    }
}
