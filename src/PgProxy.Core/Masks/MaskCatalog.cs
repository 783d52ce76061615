using System.Collections.Concurrent;

namespace PgProxy.Core.Masks;

/// <summary>
/// What a masked result column becomes: masked by <see cref="Mask"/>, or, with a <see cref="Refusal"/>, refused: a view
/// column computed from a masked column (or one the proxy cannot trace), or a column whose type the mask's function
/// cannot keep.
/// </summary>
internal sealed record ColumnVerdict(string Column, Mask Mask, string? Refusal)
{
    public bool Refuses => Refusal is not null;
}

/// <summary>A relation of the database (table, view, materialized view, foreign table) and its masked columns by attribute number.</summary>
internal sealed class CatalogRelation(uint oid, string schema, string name, char kind)
{
    public uint Oid { get; } = oid;

    public string Schema { get; } = schema;

    public string Name { get; } = name;

    /// <summary>pg_class.relkind: 'r', 'p', 'v', 'm', 'f', 'S', 't' or 'c'.</summary>
    public char Kind { get; } = kind;

    /// <summary>Masked (or refused) columns by attribute number; empty for a relation with none.</summary>
    public Dictionary<short, ColumnVerdict> Columns { get; } = [];

    public override string ToString() => $"{Schema}.{Name}";
}

/// <summary>
/// One database's relations as the masks see them, read from its catalog by <see cref="MaskCatalogReader"/> on a
/// session's own connection and shared by every session of that database under one <see cref="MaskSet"/>: every
/// relation's OID (so that one created since is noticed), and the masked columns of tables and of the views and
/// materialized views built on them. Immutable once built, but for <see cref="IsStale"/> and the names found missing.
/// </summary>
internal sealed class MaskCatalog : IMaskedRelations
{
    /// <summary>Names looked up and missing kept at most: past it the memory starts again empty.</summary>
    private const int AbsentNamesCapacity = 10_000;

    private readonly Dictionary<uint, CatalogRelation> byOid;
    private readonly Dictionary<string, List<CatalogRelation>> byName;
    private readonly ConcurrentDictionary<string, bool> absent = new(StringComparer.Ordinal);
    private int stale;

    public MaskCatalog(IEnumerable<CatalogRelation> relations)
    {
        byOid = relations.ToDictionary(relation => relation.Oid);
        byName = byOid.Values.GroupBy(relation => relation.Name, StringComparer.Ordinal)
            .ToDictionary(group => group.Key, group => group.ToList(), StringComparer.Ordinal);
    }

    /// <summary>A catalog that knows nothing: every result column with a source is unknown.</summary>
    public static MaskCatalog Unread { get; } = new([]);

    public int RelationCount => byOid.Count;

    /// <summary>True once something showed the catalog out of date (DDL in a session, an OID it does not know): read it again before the next statement.</summary>
    public bool IsStale => Volatile.Read(ref stale) != 0;

    public void MarkStale() => Volatile.Write(ref stale, 1);

    /// <summary>The relation of an OID from a RowDescription; null when the catalog has not seen it.</summary>
    public CatalogRelation? Relation(uint oid) => byOid.GetValueOrDefault(oid);

    /// <summary>The relations named <paramref name="name"/> (in <paramref name="schema"/> when given).</summary>
    public IEnumerable<CatalogRelation> Named(string? schema, string name) =>
        byName.TryGetValue(name, out List<CatalogRelation>? found)
            ? found.Where(relation => schema is null || string.Equals(relation.Schema, schema, StringComparison.Ordinal))
            : [];

    /// <summary>
    /// Whether a statement naming this relation should first have the catalog read again: the name is not in it and has
    /// not been looked for since (a table created after the catalog was read). Remembers the name as looked for.
    /// </summary>
    public bool ShouldLookFor(string? schema, string name)
    {
        if (Named(schema, name).Any())
        {
            return false;
        }

        string key = schema is null ? name : $"{schema}.{name}";
        if (absent.Count >= AbsentNamesCapacity)
        {
            absent.Clear();
        }

        return absent.TryAdd(key, true);
    }

    /// <summary>Carries the names found missing over to a catalog read again, so that they are not looked for twice.</summary>
    public void InheritAbsentNames(MaskCatalog previous)
    {
        foreach (string name in previous.absent.Keys)
        {
            int dot = name.IndexOf('.', StringComparison.Ordinal);
            if (dot < 0 ? !Named(null, name).Any() : !Named(name[..dot], name[(dot + 1)..]).Any())
            {
                absent.TryAdd(name, true);
            }
        }
    }

    public IEnumerable<(string Column, Mask Mask)> MaskedColumns(string? schema, string name)
    {
        foreach (CatalogRelation relation in Named(schema, name))
        {
            foreach (ColumnVerdict verdict in relation.Columns.Values)
            {
                yield return (verdict.Column, verdict.Mask);
            }
        }
    }

    public bool Knows(string? schema, string name) => Named(schema, name).Any();
}
