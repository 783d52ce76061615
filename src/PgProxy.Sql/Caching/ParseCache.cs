namespace PgProxy.Sql;

/// <summary>
/// A bounded least-recently-used cache keyed by query text (ordinal comparison), so that a dashboard sending the same
/// query a thousand times has it parsed (or scanned, or rewritten) once. Thread-safe: one cache serves every session.
/// </summary>
/// <remarks>
/// <para>A hit costs one hash of the key, one ordinal comparison and a few pointer moves under a short lock; it
/// allocates nothing. When the cache is full, a miss evicts the entry used least recently.</para>
/// <para>The factory runs outside the lock, so a slow parse never blocks the sessions that hit. The price: when
/// several threads miss the same key at the same time, each runs the factory; the first value stored wins, and every
/// caller, the racing ones included, gets that stored value, so a key never has two values in the cache or in the
/// hands of its callers (the losing values are dropped). A factory that throws caches nothing and the exception
/// reaches the caller. Values should be immutable, since every caller shares them.</para>
/// </remarks>
/// <typeparam name="TValue">What is cached per query: a parse tree, tokens, a rewritten query.</typeparam>
public sealed class ParseCache<TValue>
{
    private readonly Dictionary<string, Entry> entries;
    private readonly Lock gate = new();

    // The recency list: newest is the entry used last, oldest the next to evict. Guarded by gate.
    private Entry? newest;
    private Entry? oldest;
    private long hits;
    private long misses;
    private long evictions;

    /// <summary>Creates an empty cache holding at most <paramref name="capacity"/> entries.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is not positive.</exception>
    public ParseCache(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
        entries = new Dictionary<string, Entry>(Math.Min(capacity, 1024), StringComparer.Ordinal);
    }

    /// <summary>The most entries the cache holds.</summary>
    public int Capacity { get; }

    /// <summary>The number of entries now in the cache.</summary>
    public int Count
    {
        get
        {
            lock (gate)
            {
                return entries.Count;
            }
        }
    }

    /// <summary>Lookups answered from the cache since it was created.</summary>
    public long Hits => Interlocked.Read(ref hits);

    /// <summary>Lookups that ran the factory since the cache was created (each of several racing misses of one key counts).</summary>
    public long Misses => Interlocked.Read(ref misses);

    /// <summary>Entries dropped to make room since the cache was created.</summary>
    public long Evictions => Interlocked.Read(ref evictions);

    /// <summary>
    /// The value cached for <paramref name="key"/>, or the one <paramref name="factory"/> makes from it, which is then
    /// cached. Prefer the overload with a state argument when the factory would capture variables.
    /// </summary>
    public TValue GetOrAdd(string key, Func<string, TValue> factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        return GetOrAdd(key, factory, static (key, factory) => factory(key));
    }

    /// <summary>
    /// The value cached for <paramref name="key"/>, or the one <paramref name="factory"/> makes from it and
    /// <paramref name="state"/>, which is then cached. A static lambda and a state argument cost no allocation.
    /// </summary>
    public TValue GetOrAdd<TState>(string key, TState state, Func<string, TState, TValue> factory)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(factory);
        if (TryGetValue(key, out TValue? cached))
        {
            return cached;
        }

        TValue created = factory(key, state);
        lock (gate)
        {
            if (entries.TryGetValue(key, out Entry? raced))
            {
                // Another thread stored a value for this key while the factory ran: everyone gets that one.
                MoveToNewest(raced);
                return raced.Value;
            }

            Entry entry;
            if (entries.Count >= Capacity)
            {
                // Reuse the evicted entry's object: a full cache that keeps missing allocates only the values.
                entry = oldest!;
                Unlink(entry);
                entries.Remove(entry.Key);
                evictions++;
                entry.Key = key;
                entry.Value = created;
            }
            else
            {
                entry = new Entry(key, created);
            }

            entries.Add(key, entry);
            LinkAsNewest(entry);
            return created;
        }
    }

    /// <summary>Looks <paramref name="key"/> up, counting a hit or a miss; a hit makes the entry the most recently used.</summary>
    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out TValue value)
    {
        ArgumentNullException.ThrowIfNull(key);
        lock (gate)
        {
            if (entries.TryGetValue(key, out Entry? entry))
            {
                hits++;
                MoveToNewest(entry);
                value = entry.Value;
                return true;
            }

            misses++;
        }

        value = default;
        return false;
    }

    /// <summary>Drops every entry (for example when a reload changes what the values depend on); counters are kept.</summary>
    public void Clear()
    {
        lock (gate)
        {
            entries.Clear();
            newest = null;
            oldest = null;
        }
    }

    /// <summary>The keys from most to least recently used: the order in which they would survive eviction.</summary>
    public IReadOnlyList<string> KeysByRecency()
    {
        lock (gate)
        {
            var keys = new List<string>(entries.Count);
            for (Entry? entry = newest; entry is not null; entry = entry.Older)
            {
                keys.Add(entry.Key);
            }

            return keys;
        }
    }

    private void MoveToNewest(Entry entry)
    {
        if (!ReferenceEquals(entry, newest))
        {
            Unlink(entry);
            LinkAsNewest(entry);
        }
    }

    private void LinkAsNewest(Entry entry)
    {
        entry.Newer = null;
        entry.Older = newest;
        if (newest is not null)
        {
            newest.Newer = entry;
        }

        newest = entry;
        oldest ??= entry;
    }

    private void Unlink(Entry entry)
    {
        if (entry.Newer is not null)
        {
            entry.Newer.Older = entry.Older;
        }
        else
        {
            newest = entry.Older;
        }

        if (entry.Older is not null)
        {
            entry.Older.Newer = entry.Newer;
        }
        else
        {
            oldest = entry.Newer;
        }

        entry.Newer = null;
        entry.Older = null;
    }

    private sealed class Entry(string key, TValue value)
    {
        public string Key { get; set; } = key;

        public TValue Value { get; set; } = value;

        public Entry? Newer { get; set; }

        public Entry? Older { get; set; }
    }
}
