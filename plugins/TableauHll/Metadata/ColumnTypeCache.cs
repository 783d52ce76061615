using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using PgProxy.Abstractions;
using PgProxy.Plugins.TableauHll.Analysis;

namespace PgProxy.Plugins.TableauHll.Metadata;

/// <summary>
/// Which columns of which tables are of type hll, per database, asked of the server on the session's own connection and
/// kept for a time-to-live. A name without a schema is kept per user too: the search path that resolves it can differ.
/// </summary>
internal sealed class ColumnTypeCache(TimeSpan timeToLive, TimeProvider time)
{
    // Dollar quoting needs no escaping whatever standard_conforming_strings says; a name holding the tag is never asked.
    private const string QuoteTag = "$pgproxy_name$";

    private readonly ConcurrentDictionary<Key, Entry> entries = new();

    /// <summary>The most tables (per database, and per user for unqualified names) whose column types are kept.</summary>
    public int MaxEntries { get; init; } = 50_000;

    /// <summary>How many tables' column types are kept now.</summary>
    public int Count => entries.Count;

    public TimeSpan TimeToLive { get; } = timeToLive;

    /// <summary>The column types of <paramref name="relations"/> as this session sees them, asking the server for those not known or expired.</summary>
    /// <exception cref="UpstreamQueryException">The server could not be asked (a failed transaction, an unsynced batch, an error).</exception>
    public ValueTask<IColumnTypes> GetAsync(IReadOnlyList<RelationName> relations, ISessionContext session, CancellationToken cancellationToken)
    {
        long now = time.GetTimestamp();
        List<RelationName>? missing = null;
        foreach (RelationName relation in relations)
        {
            if (!entries.TryGetValue(KeyOf(relation, session), out Entry entry) || entry.ExpiresAt <= now)
            {
                (missing ??= []).Add(relation);
            }
        }

        var view = new SessionView(this, session);
        return missing is null ? new(view) : FetchAsync(missing, view, session, cancellationToken);
    }

    /// <summary>Forgets everything (for tests and reloads).</summary>
    public void Clear() => entries.Clear();

    internal static string MetadataQuery(IReadOnlyList<RelationName> relations)
    {
        var names = new StringBuilder();
        foreach (RelationName relation in relations)
        {
            names.Append(names.Length == 0 ? "" : ", ").Append(QuoteTag).Append(relation.ToRegclassText()).Append(QuoteTag);
        }

        // to_regclass returns NULL for a relation that does not exist (no rows then), and needs no privilege on it.
        return "SELECT r.ord, a.attname, t.typname = 'hll' AND t.typtype = 'b' AS is_hll"
            + $" FROM unnest(ARRAY[{names}]::text[]) WITH ORDINALITY AS r(name, ord)"
            + " JOIN pg_catalog.pg_attribute a ON a.attrelid = pg_catalog.to_regclass(r.name)"
            + " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
            + " WHERE a.attnum > 0 AND NOT a.attisdropped";
    }

    private async ValueTask<IColumnTypes> FetchAsync(List<RelationName> missing, SessionView view, ISessionContext session, CancellationToken cancellationToken)
    {
        missing.RemoveAll(relation => relation.ToRegclassText().Contains(QuoteTag, StringComparison.Ordinal));
        if (missing.Count > 0)
        {
            UpstreamQueryResult result = await session.QueryUpstreamAsync(MetadataQuery(missing), cancellationToken).ConfigureAwait(false);
            var columns = new Dictionary<string, bool>[missing.Count];
            for (int index = 0; index < columns.Length; index++)
            {
                columns[index] = new Dictionary<string, bool>(StringComparer.Ordinal);
            }

            foreach (IReadOnlyList<string?> row in result.Rows)
            {
                int position = int.Parse(row[0]!, NumberStyles.None, CultureInfo.InvariantCulture) - 1;
                columns[position][row[1]!] = row[2] == "t";
            }

            long now = time.GetTimestamp();
            long expiresAt = now + (long)(TimeToLive.TotalSeconds * time.TimestampFrequency);
            MakeRoom(now, missing.Count);
            for (int index = 0; index < missing.Count; index++)
            {
                entries[KeyOf(missing[index], session)] = new Entry(columns[index], expiresAt);
            }
        }

        return view;
    }

    /// <summary>
    /// Clients choose the table names a query mentions, so without a bound they could grow the cache without end (a
    /// name that does not exist is cached too). When <paramref name="adding"/> more would pass <see cref="MaxEntries"/>,
    /// expired entries go, then everything.
    /// </summary>
    private void MakeRoom(long now, int adding)
    {
        if (entries.Count + adding <= MaxEntries)
        {
            return;
        }

        foreach (KeyValuePair<Key, Entry> entry in entries)
        {
            if (entry.Value.ExpiresAt <= now)
            {
                entries.TryRemove(entry);
            }
        }

        if (entries.Count + adding > MaxEntries)
        {
            entries.Clear();
        }
    }

    private static Key KeyOf(RelationName relation, ISessionContext session) =>
        new(session.Database, relation.Schema is null ? session.User : null, relation);

    private readonly record struct Key(string Database, string? User, RelationName Relation);

    private readonly record struct Entry(IReadOnlyDictionary<string, bool> Columns, long ExpiresAt);

    /// <summary>The cache as one session sees it: its database, its user for unqualified names.</summary>
    private sealed class SessionView(ColumnTypeCache cache, ISessionContext session) : IColumnTypes
    {
        public IReadOnlyDictionary<string, bool>? ColumnsOf(RelationName relation) =>
            cache.entries.TryGetValue(KeyOf(relation, session), out Entry entry) ? entry.Columns : null;
    }
}
