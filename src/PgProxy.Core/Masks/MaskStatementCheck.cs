using PgProxy.Core.Configuration;

namespace PgProxy.Core.Masks;

/// <summary>Which masked columns a relation named in a statement has: the catalog's answer at run time, the configuration's in <c>test-rules</c>.</summary>
internal interface IMaskedRelations
{
    /// <summary>
    /// The masked columns of the relations a statement may mean by <paramref name="schema"/>.<paramref name="name"/>
    /// (schema null: any schema, since only the server knows the session's search_path), with their masks: base
    /// columns, and the columns of views built on them.
    /// </summary>
    IEnumerable<(string Column, Mask Mask)> MaskedColumns(string? schema, string name);

    /// <summary>Whether the name surely means a relation the lookup knows all columns of (false: a reference to it is judged cautiously).</summary>
    bool Knows(string? schema, string name);
}

/// <summary>Why a statement is refused by a mask, or would be (log-only).</summary>
internal readonly record struct MaskRefusal(Mask Mask, string Message);

/// <summary>
/// The masks' checks of one statement before it runs: a computation over a masked column (<c>computed: refuse</c>) and a
/// <c>COPY ... TO</c> of a masked relation (<c>copy: refuse</c>). Names decide, as the parser gives them: a computation
/// over any column that a relation of the statement masks under that name is refused, unless its qualifier surely
/// names another relation. That errs toward refusing, never toward letting a value through unmasked.
/// </summary>
internal static class MaskStatementCheck
{
    /// <summary>The first refusal of the statement by the masks that apply to the session (<paramref name="applies"/> by index); null when none.</summary>
    public static MaskRefusal? Check(MaskStatementFacts facts, IMaskedRelations relations, ReadOnlySpan<bool> applies)
    {
        if (!facts.IsReadable || facts.Relations.Count == 0)
        {
            return null;
        }

        if (facts.CopiedRelations is { } copied)
        {
            foreach (NamedRelation relation in copied)
            {
                foreach ((string column, Mask mask) in relations.MaskedColumns(relation.Schema, relation.Name))
                {
                    if (applies[mask.Index] && mask.Config.Copy == MaskPolicy.Refuse)
                    {
                        return new MaskRefusal(mask, $"COPY of {Describe(relation)} is refused by PgProxy {mask.DisplayName}: its column {column} is masked");
                    }
                }
            }
        }

        // Every name under which a masked value can travel through this statement: the masked columns of the relations
        // it names, then the aliases given to expressions over them, until no alias adds a name.
        var masked = new Dictionary<string, (Mask Mask, string Source)>(StringComparer.Ordinal);
        var maskedRelations = new List<(NamedRelation Relation, Mask Mask)>();
        foreach (NamedRelation relation in facts.Relations)
        {
            foreach ((string column, Mask mask) in relations.MaskedColumns(relation.Schema, relation.Name))
            {
                if (applies[mask.Index] && mask.Config.Computed == MaskPolicy.Refuse)
                {
                    masked.TryAdd(column, (mask, $"{Describe(relation)}.{column}"));
                    maskedRelations.Add((relation, mask));
                }
            }
        }

        if (masked.Count == 0)
        {
            return null;
        }

        bool grew = true;
        while (grew)
        {
            grew = false;
            foreach ((string alias, IReadOnlyList<ColumnUse> sources) in facts.Aliases)
            {
                if (masked.ContainsKey(alias))
                {
                    continue;
                }

                foreach (ColumnUse source in sources)
                {
                    if (source.Column is { } column && masked.TryGetValue(column, out (Mask Mask, string Source) origin))
                    {
                        masked[alias] = origin;
                        grew = true;
                        break;
                    }
                }
            }
        }

        // An alias list renames by position, which names alone cannot follow: every name it gives may carry a masked value.
        (Mask Mask, string Source) any = masked.Values.First();
        foreach (string alias in facts.ColumnAliases)
        {
            masked.TryAdd(alias, any);
        }

        foreach (ColumnUse use in facts.ComputedUses)
        {
            if (use.Column is not { } column)
            {
                // t.* or * inside an expression: a whole row, masked columns and all.
                if (WholeRowOf(use.Qualifier, maskedRelations, all: use.Qualifier is null) is { } rowMask)
                {
                    return Computed(rowMask.Mask, $"the whole row of {Describe(rowMask.Relation)}");
                }

                continue;
            }

            if (use.Qualifier is null && WholeRowOf(column, maskedRelations, all: false) is { } row)
            {
                return Computed(row.Mask, $"the whole row of {Describe(row.Relation)}");
            }

            if (masked.TryGetValue(column, out (Mask Mask, string Source) found) && !SurelyElsewhere(use, column, facts, relations))
            {
                return Computed(found.Mask, found.Source);
            }
        }

        foreach (string name in facts.BareNames)
        {
            if (!masked.ContainsKey(name) && WholeRowOf(name, maskedRelations, all: false) is { } row)
            {
                return Computed(row.Mask, $"the whole row of {Describe(row.Relation)}");
            }
        }

        return null;
    }

    private static MaskRefusal Computed(Mask mask, string what) =>
        new(mask, $"refused by PgProxy {mask.DisplayName}: the statement computes over {what}, which is masked");

    /// <summary>The masked relation a one-name reference means as a row (its alias or name), or any, with <paramref name="all"/>.</summary>
    private static (NamedRelation Relation, Mask Mask)? WholeRowOf(string? name, List<(NamedRelation Relation, Mask Mask)> masked, bool all)
    {
        foreach ((NamedRelation relation, Mask mask) in masked)
        {
            if (all || string.Equals(relation.Alias ?? relation.Name, name, StringComparison.Ordinal))
            {
                return (relation, mask);
            }
        }

        return null;
    }

    /// <summary>True when the reference's qualifier names relations of the statement that are known and mask no column of that name.</summary>
    private static bool SurelyElsewhere(ColumnUse use, string column, MaskStatementFacts facts, IMaskedRelations relations)
    {
        if (use.Qualifier is not { } qualifier)
        {
            return false;
        }

        bool named = false;
        foreach (NamedRelation relation in facts.Relations)
        {
            if (!string.Equals(relation.Alias ?? relation.Name, qualifier, StringComparison.Ordinal))
            {
                continue;
            }

            named = true;
            if (!relations.Knows(relation.Schema, relation.Name)
                || relations.MaskedColumns(relation.Schema, relation.Name).Any(masked => string.Equals(masked.Column, column, StringComparison.Ordinal)))
            {
                return false;
            }
        }

        // A qualifier that names no relation is a subquery's or a CTE's: its columns may be anything.
        return named;
    }

    private static string Describe(NamedRelation relation) => relation.Schema is null ? relation.Name : $"{relation.Schema}.{relation.Name}";
}

/// <summary>The masked relations as the configuration alone names them: what <c>pgproxy test-rules</c> checks with, without a server.</summary>
internal sealed class ConfiguredMaskedRelations(IReadOnlyList<Mask> masks) : IMaskedRelations
{
    public IEnumerable<(string Column, Mask Mask)> MaskedColumns(string? schema, string name)
    {
        foreach (Mask mask in masks)
        {
            foreach (MaskColumn column in mask.Config.Columns)
            {
                if ((column.Table is null || string.Equals(column.Table, name, StringComparison.Ordinal))
                    && (column.Schema is null || schema is null || string.Equals(column.Schema, schema, StringComparison.Ordinal)))
                {
                    yield return (column.Column, mask);
                }
            }
        }
    }

    public bool Knows(string? schema, string name) => false;
}
