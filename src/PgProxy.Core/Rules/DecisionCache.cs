using System.Collections.Concurrent;
using System.Net;

namespace PgProxy.Core.Rules;

/// <summary>
/// What a decision depends on: the query text, and those of the session's names, client address and protocol that some
/// rule of the set looks at (the others are left null, so that sessions that differ only there share entries).
/// </summary>
internal readonly struct DecisionKey : IEquatable<DecisionKey>
{
    private readonly string? user;
    private readonly string? database;
    private readonly string? applicationName;
    private readonly IPAddress? client;
    private readonly int protocol;

    public DecisionKey(string text, string? user, string? database, string? applicationName, IPAddress? client, int protocol)
    {
        Text = text;
        this.user = user;
        this.database = database;
        this.applicationName = applicationName;
        this.client = client;
        this.protocol = protocol;
    }

    public string Text { get; }

    public bool Equals(DecisionKey other) =>
        protocol == other.protocol
        && string.Equals(Text, other.Text, StringComparison.Ordinal)
        && string.Equals(user, other.user, StringComparison.Ordinal)
        && string.Equals(database, other.database, StringComparison.Ordinal)
        && string.Equals(applicationName, other.applicationName, StringComparison.Ordinal)
        && (ReferenceEquals(client, other.client) || (client is not null && client.Equals(other.client)));

    public override bool Equals(object? obj) => obj is DecisionKey other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(
        StringComparer.Ordinal.GetHashCode(Text),
        user is null ? 0 : StringComparer.Ordinal.GetHashCode(user),
        database is null ? 0 : StringComparer.Ordinal.GetHashCode(database),
        applicationName is null ? 0 : StringComparer.Ordinal.GetHashCode(applicationName),
        client?.GetHashCode() ?? 0,
        protocol);
}

/// <summary>
/// The decisions of one <see cref="RuleSet"/>, so that a query seen before costs one hash and one comparison of its
/// text, with no allocation and no lock. Bounded twice: in entries, and in the characters they keep alive (a
/// decision holds its query, its new text and the texts of its hits; ten thousand 1 MB queries would otherwise hold
/// 20 GB). When either bound is passed the cache starts again empty, which is cheaper than tracking recency on every
/// hit and costs only a re-evaluation of the queries still in use. The bounds are approximate under concurrent adds.
/// A reload builds a new rule set, and with it an empty cache.
/// </summary>
internal sealed class DecisionCache(int capacity, long characterBudget)
{
    private readonly ConcurrentDictionary<DecisionKey, RuleDecision> entries = new();
    private long count;
    private long characters;

    /// <summary>The number of decisions cached now.</summary>
    public int Count => entries.Count;

    public bool TryGet(in DecisionKey key, out RuleDecision decision) => entries.TryGetValue(key, out decision!);

    /// <summary>Caches <paramref name="decision"/>, unless it alone would fill the budget.</summary>
    public void Add(in DecisionKey key, RuleDecision decision)
    {
        long size = key.Text.Length + decision.RetainedCharacters;
        if (size > characterBudget / 4)
        {
            return;
        }

        if (Interlocked.Increment(ref count) > capacity || Interlocked.Add(ref characters, size) > characterBudget)
        {
            entries.Clear();
            Interlocked.Exchange(ref count, 1);
            Interlocked.Exchange(ref characters, size);
        }

        if (!entries.TryAdd(key, decision))
        {
            // Another session decided the same query at the same time: its entry stands, and this one takes no room.
            Interlocked.Decrement(ref count);
            Interlocked.Add(ref characters, -size);
        }
    }
}
