namespace PgProxy.Plugins.TableauHll.Analysis;

/// <summary>A relation as written in a query: schema (null when the search path decides) and name, both as PostgreSQL folded them.</summary>
internal readonly record struct RelationName(string? Schema, string Name)
{
    /// <summary>The name as PostgreSQL's regclass input reads it, every part quoted.</summary>
    public string ToRegclassText() => Schema is null ? Quote(Name) : $"{Quote(Schema)}.{Quote(Name)}";

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}

/// <summary>The columns of the relations a query reads, as far as the plugin knows them: true for a column of type hll.</summary>
internal interface IColumnTypes
{
    /// <summary>The relation's columns (name → is hll), or null when the relation does not exist or is unknown.</summary>
    IReadOnlyDictionary<string, bool>? ColumnsOf(RelationName relation);
}

/// <summary>One item of a FROM clause, under the name queries use for it.</summary>
internal abstract class RangeItem(string? alias)
{
    /// <summary>The alias, when the FROM clause gives one.</summary>
    public string? Alias { get; } = alias;

    /// <summary>Whether <paramref name="qualifier"/> (one or two names before the column) names this item.</summary>
    public abstract bool IsNamed(IReadOnlyList<string> qualifier);

    /// <summary>Whether the item has a column of this name: null when it cannot be known.</summary>
    public abstract bool? HasColumn(string column, IColumnTypes types);

    /// <summary>Whether the item's column of this name is of type hll.</summary>
    public abstract bool IsHll(string column, IColumnTypes types);

    /// <summary>The tables whose columns decide <see cref="HasColumn"/> and <see cref="IsHll"/>.</summary>
    public abstract IEnumerable<RelationName> Relations();
}

/// <summary>A table or view.</summary>
internal sealed class TableItem(RelationName relation, string? alias) : RangeItem(alias)
{
    public RelationName Relation { get; } = relation;

    public override bool IsNamed(IReadOnlyList<string> qualifier) => Alias is not null
        ? qualifier.Count == 1 && string.Equals(qualifier[0], Alias, StringComparison.Ordinal)
        : qualifier.Count switch
        {
            1 => string.Equals(qualifier[0], Relation.Name, StringComparison.Ordinal),
            2 => string.Equals(qualifier[1], Relation.Name, StringComparison.Ordinal)
                && (Relation.Schema is null || string.Equals(qualifier[0], Relation.Schema, StringComparison.Ordinal)),
            _ => false,
        };

    public override bool? HasColumn(string column, IColumnTypes types) => types.ColumnsOf(Relation) is { } columns ? columns.ContainsKey(column) : null;

    public override bool IsHll(string column, IColumnTypes types) => types.ColumnsOf(Relation) is { } columns && columns.TryGetValue(column, out bool hll) && hll;

    public override IEnumerable<RelationName> Relations() => [Relation];
}

/// <summary>A subquery or a common table expression: its columns are the output columns of its SELECT.</summary>
internal sealed class DerivedItem(string? alias, IReadOnlyList<OutputColumn> columns) : RangeItem(alias)
{
    public IReadOnlyList<OutputColumn> Columns { get; } = columns;

    public override bool IsNamed(IReadOnlyList<string> qualifier) =>
        qualifier.Count == 1 && Alias is not null && string.Equals(qualifier[0], Alias, StringComparison.Ordinal);

    public override bool? HasColumn(string column, IColumnTypes types) =>
        Columns.Any(output => output.Star is { } star ? star.Resolve(column, types) is not null : string.Equals(output.Name, column, StringComparison.Ordinal));

    public override bool IsHll(string column, IColumnTypes types)
    {
        foreach (OutputColumn output in Columns)
        {
            if (output.Star is { } star)
            {
                if (star.Resolve(column, types) is { } resolved)
                {
                    return resolved;
                }
            }
            else if (string.Equals(output.Name, column, StringComparison.Ordinal))
            {
                return output.Source is { } source && source.Resolve(types) == true;
            }
        }

        return false;
    }

    public override IEnumerable<RelationName> Relations() =>
        Columns.SelectMany(column => column.Star?.Relations() ?? column.Source?.Relations() ?? []);
}

/// <summary>Anything else in a FROM clause (a function, VALUES): its columns are never of type hll as far as the plugin knows.</summary>
internal sealed class OpaqueItem(string? alias) : RangeItem(alias)
{
    public override bool IsNamed(IReadOnlyList<string> qualifier) =>
        qualifier.Count == 1 && Alias is not null && string.Equals(qualifier[0], Alias, StringComparison.Ordinal);

    public override bool? HasColumn(string column, IColumnTypes types) => null;

    public override bool IsHll(string column, IColumnTypes types) => false;

    public override IEnumerable<RelationName> Relations() => [];
}

/// <summary>An output column of a subquery: a name, and the column it passes through unchanged (when it does), or a <c>*</c>.</summary>
internal sealed record OutputColumn(string? Name, ColumnReference? Source, StarReference? Star);

/// <summary>
/// The names a query can see at one point: the FROM items of its SELECT, then those of the enclosing SELECTs.
/// Common table expressions are visible from the SELECT that defines them inward.
/// </summary>
internal sealed class Scope(Scope? parent, IReadOnlyDictionary<string, DerivedItemFactory>? commonTableExpressions)
{
    private readonly List<RangeItem> items = [];
    private readonly IReadOnlyDictionary<string, DerivedItemFactory>? ctes = commonTableExpressions;

    public Scope? Parent { get; } = parent;

    public IReadOnlyList<RangeItem> Items => items;

    public void Add(RangeItem item) => items.Add(item);

    /// <summary>The common table expression of this name visible here, innermost first.</summary>
    public DerivedItemFactory? FindCommonTableExpression(string name)
    {
        for (Scope? scope = this; scope is not null; scope = scope.Parent)
        {
            if (scope.ctes is { } visible && visible.TryGetValue(name, out DerivedItemFactory? factory))
            {
                return factory;
            }
        }

        return null;
    }
}

/// <summary>Makes the item a reference to a common table expression becomes (under the alias of that reference).</summary>
internal sealed class DerivedItemFactory(IReadOnlyList<OutputColumn> columns)
{
    public IReadOnlyList<OutputColumn> Columns { get; set; } = columns;

    public DerivedItem Create(string alias) => new(alias, Columns);
}

/// <summary>A column reference (<c>col</c>, <c>t.col</c>, <c>s.t.col</c>) and the scope it is resolved in.</summary>
internal sealed class ColumnReference(Scope scope, IReadOnlyList<string> qualifier, string column)
{
    public Scope Scope { get; } = scope;

    public IReadOnlyList<string> Qualifier { get; } = qualifier;

    public string Column { get; } = column;

    /// <summary>True when the reference resolves to a column of type hll, false when to another column, null when it does not resolve.</summary>
    public bool? Resolve(IColumnTypes types)
    {
        for (Scope? scope = Scope; scope is not null; scope = scope.Parent)
        {
            if (Qualifier.Count > 0)
            {
                foreach (RangeItem item in scope.Items)
                {
                    if (item.IsNamed(Qualifier))
                    {
                        return item.IsHll(Column, types);
                    }
                }

                continue;
            }

            // An unqualified name belongs to the innermost SELECT that has such a column; PostgreSQL rejects it when two
            // items there have it, so "all of them are hll" is the only answer that can matter.
            bool any = false;
            bool allHll = true;
            foreach (RangeItem item in scope.Items)
            {
                if (item.HasColumn(Column, types) == true)
                {
                    any = true;
                    allHll &= item.IsHll(Column, types);
                }
            }

            if (any)
            {
                return allHll;
            }
        }

        return null;
    }

    /// <summary>Every table this reference could resolve through.</summary>
    public IEnumerable<RelationName> Relations()
    {
        for (Scope? scope = Scope; scope is not null; scope = scope.Parent)
        {
            foreach (RangeItem item in scope.Items)
            {
                if (Qualifier.Count == 0 || item.IsNamed(Qualifier))
                {
                    foreach (RelationName relation in item.Relations())
                    {
                        yield return relation;
                    }
                }
            }
        }
    }
}

/// <summary>A <c>*</c> or <c>t.*</c> in a subquery's select list: a name is resolved in the subquery's scope.</summary>
internal sealed class StarReference(Scope scope, IReadOnlyList<string> qualifier)
{
    /// <summary>True/false when the star provides the column (hll or not), null when it does not provide it.</summary>
    public bool? Resolve(string column, IColumnTypes types)
    {
        foreach (RangeItem item in scope.Items)
        {
            if ((qualifier.Count == 0 || item.IsNamed(qualifier)) && item.HasColumn(column, types) == true)
            {
                return item.IsHll(column, types);
            }
        }

        return null;
    }

    public IEnumerable<RelationName> Relations() =>
        scope.Items.Where(item => qualifier.Count == 0 || item.IsNamed(qualifier)).SelectMany(item => item.Relations());
}
