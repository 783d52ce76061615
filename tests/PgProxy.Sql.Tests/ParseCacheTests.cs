using System.Runtime.CompilerServices;

namespace PgProxy.Sql.Tests;

public sealed class ParseCacheTests
{
    [Fact]
    public void A_hit_returns_the_cached_value_without_running_the_factory()
    {
        var cache = new ParseCache<object>(4);
        int calls = 0;
        object first = cache.GetOrAdd("SELECT 1", _ => { calls++; return new object(); });

        object second = cache.GetOrAdd("SELECT 1", _ => { calls++; return new object(); });

        Assert.Same(first, second);
        Assert.Equal(1, calls);
        Assert.Equal((1L, 1L, 1), (cache.Hits, cache.Misses, cache.Count));
    }

    [Fact]
    public void Keys_are_compared_ordinally()
    {
        var cache = new ParseCache<string>(4);
        cache.GetOrAdd("select 1", key => key);

        Assert.Equal("SELECT 1", cache.GetOrAdd("SELECT 1", key => key));
        Assert.Equal(2, cache.Count);
    }

    [Fact]
    public void The_least_recently_used_entry_is_evicted_first()
    {
        var cache = new ParseCache<string>(3);
        cache.GetOrAdd("a", key => key);
        cache.GetOrAdd("b", key => key);
        cache.GetOrAdd("c", key => key);
        cache.GetOrAdd("a", key => key);

        cache.GetOrAdd("d", key => key);

        Assert.Equal(["d", "a", "c"], cache.KeysByRecency());
        Assert.False(cache.TryGetValue("b", out _));
        cache.GetOrAdd("e", key => key);
        Assert.Equal(["e", "d", "a"], cache.KeysByRecency());
        Assert.Equal(3, cache.Count);
        Assert.Equal(2, cache.Evictions);
    }

    [Fact]
    public void A_cache_of_one_keeps_the_last_key()
    {
        var cache = new ParseCache<string>(1);
        cache.GetOrAdd("a", key => key);
        cache.GetOrAdd("b", key => key);

        Assert.Equal(["b"], cache.KeysByRecency());
        Assert.True(cache.TryGetValue("b", out string? value));
        Assert.Equal("b", value);
    }

    [Fact]
    public void The_state_overload_passes_its_state_to_the_factory()
    {
        var cache = new ParseCache<string>(2);

        string value = cache.GetOrAdd("SELECT 1", "/* tagged */ ", static (key, prefix) => prefix + key);

        Assert.Equal("/* tagged */ SELECT 1", value);
    }

    [Fact]
    public void A_factory_that_throws_caches_nothing()
    {
        var cache = new ParseCache<ParseResultHolder>(2);

        Assert.Throws<SqlParseException>(() => cache.GetOrAdd("SELEC 1", static key => new ParseResultHolder(PostgresParser.Parse(key))));

        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void Clear_drops_every_entry()
    {
        var cache = new ParseCache<string>(2);
        cache.GetOrAdd("a", key => key);
        cache.GetOrAdd("b", key => key);

        cache.Clear();

        Assert.Equal(0, cache.Count);
        Assert.Empty(cache.KeysByRecency());
        cache.GetOrAdd("c", key => key);
        Assert.Equal(["c"], cache.KeysByRecency());
    }

    [Fact]
    public void Capacity_must_be_positive()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ParseCache<string>(0));
        Assert.Equal(7, new ParseCache<string>(7).Capacity);
    }

    [Fact]
    public void Many_threads_sharing_keys_get_values_of_their_own_key_and_every_miss_runs_the_factory_once()
    {
        // More keys than capacity, so eviction runs concurrently with hits and racing misses.
        const int threads = 8;
        const int lookupsPerThread = 20_000;
        const int keyCount = 96;
        var cache = new ParseCache<Box>(64);
        string[] keys = [.. Enumerable.Range(0, keyCount).Select(index => $"SELECT {index}")];
        var factoryRuns = new StrongBox<long>();
        int wrongValues = 0;

        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, thread =>
        {
            var random = new Random(thread);
            for (int lookup = 0; lookup < lookupsPerThread; lookup++)
            {
                string key = keys[random.Next(keyCount)];
                Box value = cache.GetOrAdd(key, factoryRuns, static (key, runs) =>
                {
                    Interlocked.Increment(ref runs.Value);
                    return new Box(key);
                });
                if (value.Key != key)
                {
                    Interlocked.Increment(ref wrongValues);
                }
            }
        });

        Assert.Equal(0, wrongValues);
        Assert.Equal(threads * lookupsPerThread, cache.Hits + cache.Misses);
        Assert.Equal(cache.Misses, factoryRuns.Value);
        Assert.Equal(64, cache.Count);
        Assert.Equal(64, cache.KeysByRecency().Distinct().Count());
        Assert.True(cache.Hits > 0);
    }

    [Fact]
    public void Racing_misses_of_one_key_hand_every_caller_the_same_instance()
    {
        var cache = new ParseCache<Box>(4);
        using var barrier = new Barrier(4);
        var seen = new Box[4];
        int factoryRuns = 0;

        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, thread =>
        {
            seen[thread] = cache.GetOrAdd("SELECT 1", key =>
            {
                Interlocked.Increment(ref factoryRuns);
                barrier.SignalAndWait(TimeSpan.FromSeconds(1));
                return new Box(key);
            });
        });

        Assert.All(seen, box => Assert.Same(seen[0], box));
        Assert.InRange(factoryRuns, 1, 4);
        Assert.Equal(1, cache.Count);
    }

    private sealed record Box(string Key);

    private sealed record ParseResultHolder(PgQuery.ParseResult Tree);
}
