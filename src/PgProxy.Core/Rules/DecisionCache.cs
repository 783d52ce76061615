using System.Collections.Concurrent;
using System.Net;

namespace PgProxy.Core.Rules;

/// <summary>
/// Besides the text, what a decision depends on: those of the session's names, client address and protocol that some
/// rule of the set looks at (the others are left null, so that sessions that differ only there share a decision).
/// Compared field by field, never hashed: the few variants of one text are searched in a row.
/// </summary>
internal readonly struct SessionKey(string? user, string? database, string? applicationName, IPAddress? client, int protocol)
{
    private readonly string? user = user;
    private readonly string? database = database;
    private readonly string? applicationName = applicationName;
    private readonly IPAddress? client = client;
    private readonly int protocol = protocol;

    public bool SameAs(in SessionKey other) =>
        protocol == other.protocol
        && string.Equals(user, other.user, StringComparison.Ordinal)
        && string.Equals(database, other.database, StringComparison.Ordinal)
        && string.Equals(applicationName, other.applicationName, StringComparison.Ordinal)
        && (ReferenceEquals(client, other.client) || (client is not null && client.Equals(other.client)));
}

/// <summary>
/// The decisions of one <see cref="RuleSet"/>, so that a query seen before costs one hash and one comparison of its
/// text, with no allocation and no lock.
/// </summary>
/// <remarks>
/// <para>Keyed by the text alone, with the string key that <see cref="ConcurrentDictionary{TKey, TValue}"/> hashes
/// with the runtime's fast non-randomized hash (and switches to the randomized one if collisions pile up, so crafted
/// query texts cannot flood it). A key struct over text and session would pay the randomized hash of the whole text on
/// every lookup: measured at more than twice the cost for a 140-character query. The session variants of one text
/// (one, unless the rules look at users, applications or clients) sit in a small array beside it.</para>
/// <para>A text is cached the second time it is decided, not the first (<see cref="Admit"/>). Texts that carry their
/// constants, as every statement in the simple protocol of pgbench and of many applications does, are seldom seen twice:
/// caching each of them filled the cache, emptied it and filled it again, and the garbage of that churn (entries that
/// lived long enough to be promoted) cost more GC time than the decisions it saved. One slot per text hash in a fixed
/// table remembers what was seen once, with no allocation.</para>
/// <para>Bounded twice: in decisions, and in the characters they keep alive (a decision holds its query, its new text
/// and the texts of its hits; ten thousand 1 MB queries would otherwise hold 20 GB). When either bound is passed the
/// cache starts again empty, which is cheaper than tracking recency on every hit and costs only a re-evaluation of the
/// queries still in use. The bounds are approximate under concurrent adds. A reload builds a new rule set, and with
/// it an empty cache.</para>
/// </remarks>
internal sealed class DecisionCache(int capacity, long characterBudget)
{
    /// <summary>Session variants kept per text; past it the text's variants start again (a text sent by that many kinds of session is rare).</summary>
    private const int MaxVariants = 32;

    /// <summary>Slots of the table of texts seen once (a power of two): 128 KB.</summary>
    private const int SeenOnceSlots = 32 * 1024;

    private readonly ConcurrentDictionary<string, Variants> entries = new(StringComparer.Ordinal);
    private long count;
    private long characters;

    // The hash of the last text decided, per slot. Races between sessions only make admission approximate.
    private readonly int[] seenOnce = new int[SeenOnceSlots];

    /// <summary>The number of decisions cached now (each session variant of a text counts).</summary>
    public int Count => entries.Values.Sum(variants => variants.Items.Length);

    public bool TryGet(string text, in SessionKey session, out RuleDecision decision)
    {
        if (entries.TryGetValue(text, out Variants? variants))
        {
            foreach (Variant variant in variants.Items)
            {
                if (variant.Session.SameAs(session))
                {
                    decision = variant.Decision;
                    return true;
                }
            }
        }

        decision = null!;
        return false;
    }

    /// <summary>
    /// Whether a text just decided should be cached: true when it was decided before (as far as one slot per hash
    /// remembers), and otherwise remembers it for next time. The string hash is the runtime's randomized one, so crafted
    /// texts cannot keep another text out.
    /// </summary>
    public bool Admit(string text)
    {
        int hash = text.GetHashCode(StringComparison.Ordinal);
        ref int slot = ref seenOnce[hash & (SeenOnceSlots - 1)];
        if (Volatile.Read(ref slot) == hash)
        {
            return true;
        }

        Volatile.Write(ref slot, hash);
        return false;
    }

    /// <summary>Caches <paramref name="decision"/>, unless it alone would take a quarter of the budget.</summary>
    public void Add(string text, in SessionKey session, RuleDecision decision)
    {
        long size = text.Length + decision.RetainedCharacters;
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

        var added = new Variant(session, decision);
        if (entries.TryAdd(text, new Variants([added])))
        {
            return;
        }

        if (entries.TryGetValue(text, out Variants? existing))
        {
            // Another session kind already sent this text (or the same one, deciding at the same moment): the arrays are
            // immutable, so readers never see one half-written, and a lost race only means one variant decided again.
            lock (existing)
            {
                Variant[] items = existing.Items;
                existing.Items = items.Length >= MaxVariants ? [added] : [.. items, added];
            }
        }
    }

    private sealed class Variants(Variant[] items)
    {
        private Variant[] items = items;

        public Variant[] Items
        {
            get => Volatile.Read(ref items);
            set => Volatile.Write(ref items, value);
        }
    }

    private sealed class Variant(SessionKey session, RuleDecision decision)
    {
        public SessionKey Session { get; } = session;

        public RuleDecision Decision { get; } = decision;
    }
}
