using System.Collections.Concurrent;

namespace PgProxy.Core.Statistics;

/// <summary>What one statistics entry is about: a query shape run by one user in one database through one instance.</summary>
internal readonly record struct QueryKey(string Instance, string Database, string User, ulong Fingerprint);

/// <summary>
/// Per-query statistics of the whole proxy (survives reloads): one <see cref="QueryEntry"/> per (instance, database,
/// user, fingerprint), at most <see cref="Capacity"/> of them; when full, the least recently seen tenth is evicted
/// and the evictions are counted. Recorded once per completed statement, never per frame.
/// </summary>
internal sealed class QueryStatistics(int capacity)
{
    private readonly ConcurrentDictionary<QueryKey, QueryEntry> entries = new();
    private readonly ConcurrentDictionary<string, InstanceStatistics> instances = new(StringComparer.Ordinal);
    private readonly Lock evicting = new();
    private long evictions;

    /// <summary>Entries kept at most (<c>stats.max-queries</c>); a reload may change it.</summary>
    public int Capacity { get; set; } = capacity;

    public long Evictions => Interlocked.Read(ref evictions);

    public int Count => entries.Count;

    /// <summary>A statement ended: <paramref name="failed"/> when by an ErrorResponse, otherwise with <paramref name="rows"/>.</summary>
    public void Record(in QueryKey key, QueryShape shape, double microseconds, long rows, bool failed, DateTimeOffset now) =>
        EntryFor(key, shape).Record(microseconds, rows, failed, now);

    /// <summary>The entry of <paramref name="key"/>, made when new. A caller may keep it while <see cref="QueryEntry.Evicted"/> is false.</summary>
    public QueryEntry EntryFor(in QueryKey key, QueryShape shape)
    {
        if (!entries.TryGetValue(key, out QueryEntry? entry))
        {
            if (entries.Count >= Capacity)
            {
                Evict();
            }

            entry = entries.GetOrAdd(key, static (_, shape) => new QueryEntry(shape.NormalizedText), shape);
        }

        return entry;
    }

    /// <summary>Counts a rewrite or a refusal of a statement by a rule or plugin, on its entry.</summary>
    public void RecordChange(in QueryKey key, QueryShape shape, string by, bool refused, DateTimeOffset now) =>
        entries.GetOrAdd(key, static (_, shape) => new QueryEntry(shape.NormalizedText), shape).RecordChange(by, refused, now);

    /// <summary>The totals of the instance named <paramref name="instance"/> (its listen name).</summary>
    public InstanceStatistics ForInstance(string instance) => instances.GetOrAdd(instance, static _ => new InstanceStatistics());

    /// <summary>Every instance's totals, by listen name.</summary>
    public IReadOnlyDictionary<string, InstanceStatisticsSnapshot> InstanceSnapshots() =>
        instances.ToDictionary(pair => pair.Key, pair => pair.Value.Snapshot(), StringComparer.Ordinal);

    public IReadOnlyList<KeyValuePair<QueryKey, QueryEntrySnapshot>> Snapshot() =>
        [.. entries.Select(pair => new KeyValuePair<QueryKey, QueryEntrySnapshot>(pair.Key, pair.Value.Snapshot()))];

    public void Reset()
    {
        foreach (QueryEntry entry in entries.Values)
        {
            entry.Evicted = true;
        }

        entries.Clear();
        instances.Clear();
        Interlocked.Exchange(ref evictions, 0);
    }

    private void Evict()
    {
        lock (evicting)
        {
            if (entries.Count < Capacity)
            {
                return;
            }

            int toEvict = Math.Max(1, entries.Count - Capacity + (Capacity / 10));
            foreach (KeyValuePair<QueryKey, QueryEntry> oldest in entries.OrderBy(pair => pair.Value.LastSeenTicks).Take(toEvict).ToList())
            {
                if (entries.TryRemove(oldest.Key, out QueryEntry? evicted))
                {
                    evicted.Evicted = true;
                    Interlocked.Increment(ref evictions);
                }
            }
        }
    }
}

/// <summary>One query shape's figures. Updated under its own lock: one statement's completion at a time.</summary>
internal sealed class QueryEntry(string normalizedText)
{
    private readonly Lock gate = new();
    private readonly LatencyHistogram histogram = new();
    private readonly Dictionary<string, long> rewrittenBy = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> refusedBy = new(StringComparer.Ordinal);
    private long calls;
    private double totalMicroseconds;
    private double minMicroseconds = double.MaxValue;
    private double maxMicroseconds;
    private long rows;
    private long errors;
    private DateTimeOffset firstSeen;
    private long lastSeenTicks;

    public long LastSeenTicks => Interlocked.Read(ref lastSeenTicks);

    /// <summary>Set when the store let this entry go: sessions that remembered it look it up again.</summary>
    public bool Evicted
    {
        get => Volatile.Read(ref evicted);
        set => Volatile.Write(ref evicted, value);
    }

    private bool evicted;

    public void Record(double microseconds, long rowCount, bool failed, DateTimeOffset now)
    {
        lock (gate)
        {
            Seen(now);
            calls++;
            totalMicroseconds += microseconds;
            minMicroseconds = Math.Min(minMicroseconds, microseconds);
            maxMicroseconds = Math.Max(maxMicroseconds, microseconds);
            histogram.Record(microseconds);
            if (failed)
            {
                errors++;
            }
            else
            {
                rows += rowCount;
            }
        }
    }

    public void RecordChange(string by, bool refused, DateTimeOffset now)
    {
        lock (gate)
        {
            Seen(now);
            Dictionary<string, long> counts = refused ? refusedBy : rewrittenBy;
            counts[by] = counts.GetValueOrDefault(by) + 1;
        }
    }

    public QueryEntrySnapshot Snapshot()
    {
        lock (gate)
        {
            return new QueryEntrySnapshot(
                calls,
                totalMicroseconds,
                calls == 0 ? 0 : totalMicroseconds / calls,
                calls == 0 ? 0 : minMicroseconds,
                maxMicroseconds,
                histogram.Percentile(0.50),
                histogram.Percentile(0.95),
                histogram.Percentile(0.99),
                rows,
                errors,
                new Dictionary<string, long>(rewrittenBy, StringComparer.Ordinal),
                new Dictionary<string, long>(refusedBy, StringComparer.Ordinal),
                firstSeen,
                new DateTimeOffset(LastSeenTicks, TimeSpan.Zero),
                normalizedText);
        }
    }

    private void Seen(DateTimeOffset now)
    {
        if (calls == 0 && rewrittenBy.Count == 0 && refusedBy.Count == 0)
        {
            firstSeen = now;
        }

        Interlocked.Exchange(ref lastSeenTicks, now.UtcTicks);
    }
}

/// <summary>An entry's figures at one moment; times in microseconds.</summary>
internal sealed record QueryEntrySnapshot(
    long Calls,
    double TotalMicroseconds,
    double MeanMicroseconds,
    double MinMicroseconds,
    double MaxMicroseconds,
    double P50Microseconds,
    double P95Microseconds,
    double P99Microseconds,
    long Rows,
    long Errors,
    IReadOnlyDictionary<string, long> RewrittenBy,
    IReadOnlyDictionary<string, long> RefusedBy,
    DateTimeOffset FirstSeen,
    DateTimeOffset LastSeen,
    string NormalizedText);
