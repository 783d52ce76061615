using Google.Protobuf;
using PgProxy.Core.Configuration;
using PgProxy.Core.Rules;
using PgProxy.Sql;
using PgQuery;

namespace PgProxy.Core.Masks;

/// <summary>A relation a statement names, with the alias it goes by there (null without one).</summary>
internal readonly record struct NamedRelation(string? Schema, string Name, string? Alias);

/// <summary>
/// A column reference the masks care about: <c>Qualifier.Column</c>, <c>Column</c> alone, or with a null
/// <see cref="Column"/> a whole row (<c>t.*</c> or <c>*</c> inside an expression).
/// </summary>
internal readonly record struct ColumnUse(string? Qualifier, string? Column);

/// <summary>
/// What the masks' checks need from one statement's parse, worked out once per text (see <see cref="MaskSet"/>'s cache)
/// and independent of any catalog: the relations it names, the column references that feed a computation or are written
/// into a table (<c>upper(email)</c>, <c>email::text</c>, <c>INSERT ... SELECT email</c>, <c>CREATE TABLE ... AS</c>),
/// the output aliases that carry a column onward (<c>SELECT email AS e</c> inside a subquery), and for a
/// <c>COPY ... TO</c> the relations it reads.
/// </summary>
internal sealed class MaskStatementFacts
{
    /// <summary>Facts of text the parser cannot read: the server refuses it too, so nothing is checked.</summary>
    public static MaskStatementFacts Unreadable { get; } = new() { IsReadable = false };

    public bool IsReadable { get; private init; } = true;

    public StatementKinds Kinds { get; private init; }

    public IReadOnlyList<NamedRelation> Relations { get; private init; } = [];

    /// <summary>References inside computations, and references whose values are written into a table.</summary>
    public IReadOnlyList<ColumnUse> ComputedUses { get; private init; } = [];

    /// <summary>One-name references in output position (<c>SELECT c FROM customers c</c> is the whole row as one value).</summary>
    public IReadOnlyList<string> BareNames { get; private init; } = [];

    /// <summary>Output aliases and the references their values are made of.</summary>
    public IReadOnlyList<(string Alias, IReadOnlyList<ColumnUse> Sources)> Aliases { get; private init; } = [];

    /// <summary>Column names given by alias lists (<c>AS s(a, b)</c>, <c>WITH x(a, b)</c>): they rename columns positionally.</summary>
    public IReadOnlyList<string> ColumnAliases { get; private init; } = [];

    /// <summary>For <c>COPY ... TO</c>: the relations it reads (its table, or those of its query). Null for any other statement.</summary>
    public IReadOnlyList<NamedRelation>? CopiedRelations { get; private init; }

    /// <summary>The facts of one statement's text.</summary>
    public static MaskStatementFacts Of(string statement)
    {
        PgQuery.ParseResult tree;
        try
        {
            tree = PostgresParser.Parse(statement);
        }
        catch (SqlParseException)
        {
            return Unreadable;
        }

        var kinds = StatementKinds.None;
        var relations = new List<NamedRelation>();
        var cteNames = new HashSet<string>(StringComparer.Ordinal);
        var computed = new List<ColumnUse>();
        var bare = new List<string>();
        var aliases = new List<(string, IReadOnlyList<ColumnUse>)>();
        var columnAliases = new List<string>();
        List<NamedRelation>? copied = null;

        // Target lists whose plain references are written into a table rather than returned to the client.
        var writtenLists = new HashSet<IMessage>(ReferenceEqualityComparer.Instance);
        foreach (RawStmt raw in tree.Stmts)
        {
            kinds |= StatementClassifier.Classify(raw.Stmt);
            StatementClassifier.Walk(raw.Stmt, node =>
            {
                switch (node)
                {
                    case InsertStmt { SelectStmt: { } source }:
                        MarkWritten(source, writtenLists);
                        break;
                    case CreateTableAsStmt { Objtype: ObjectType.ObjectTable, Query: { } query }:
                        MarkWritten(query, writtenLists);
                        break;
                    case SelectStmt { IntoClause: not null } into:
                        writtenLists.Add(into);
                        break;

                    // The server describes a set operation's columns (UNION, INTERSECT, EXCEPT) without a source: a
                    // masked column in a branch would come out unmasked, as from a computation.
                    case SelectStmt { Op: not SetOperation.SetopNone } setOperation:
                        if (setOperation.Larg is { } left)
                        {
                            MarkWritten(left, writtenLists);
                        }

                        if (setOperation.Rarg is { } right)
                        {
                            MarkWritten(right, writtenLists);
                        }

                        break;
                    case CommonTableExpr cte:
                        cteNames.Add(cte.Ctename);
                        columnAliases.AddRange(Names(cte.Aliascolnames));
                        break;
                    case Alias alias:
                        columnAliases.AddRange(Names(alias.Colnames));
                        break;
                }
            });

            if (raw.Stmt.CopyStmt is { IsFrom: false } copy)
            {
                copied ??= [];
                if (copy.Relation is { } table)
                {
                    copied.Add(Named(table));
                }

                if (copy.Query is { } query)
                {
                    StatementClassifier.Walk(query, node =>
                    {
                        if (node is RangeVar range)
                        {
                            copied.Add(Named(range));
                        }
                    });
                }
            }
        }

        foreach (RawStmt raw in tree.Stmts)
        {
            StatementClassifier.Walk(raw.Stmt, node =>
            {
                switch (node)
                {
                    case RangeVar range when !(range.Schemaname.Length == 0 && cteNames.Contains(range.Relname)):
                        relations.Add(Named(range));
                        break;
                    case SelectStmt select:
                        ReadTargets(select.TargetList, written: writtenLists.Contains(select), computed, bare, aliases);

                        // VALUES rows are described without a source too, whatever their expressions read.
                        foreach (Node row in select.ValuesLists)
                        {
                            computed.AddRange(References(row));
                        }

                        break;
                    case JoinExpr { Jointype: JoinType.JoinFull } full:
                        // FULL JOIN ... USING merges each named column of both sides into one without a source.
                        if (full.IsNatural)
                        {
                            computed.Add(new ColumnUse(null, null));
                        }

                        computed.AddRange(Names(full.UsingClause).Select(name => new ColumnUse(null, name)));
                        break;
                    case RangeFunction function:
                        // A function in FROM (unnest(ARRAY(SELECT email ...))) returns columns without a source.
                        computed.AddRange(References(function));
                        break;
                    case InsertStmt insert:
                        ReadTargets(insert.ReturningList, written: false, computed, bare, aliases);
                        break;
                    case UpdateStmt update:
                        ReadTargets(update.TargetList, written: true, computed, bare, aliases);
                        ReadTargets(update.ReturningList, written: false, computed, bare, aliases);
                        break;
                    case DeleteStmt delete:
                        ReadTargets(delete.ReturningList, written: false, computed, bare, aliases);
                        break;
                }
            });
        }

        return new MaskStatementFacts
        {
            Kinds = kinds,
            Relations = relations,
            ComputedUses = computed,
            BareNames = bare,
            Aliases = aliases,
            ColumnAliases = columnAliases,
            CopiedRelations = copied,
        };
    }

    private static void MarkWritten(IMessage query, HashSet<IMessage> written)
    {
        StatementClassifier.Walk(query, node =>
        {
            if (node is SelectStmt select)
            {
                written.Add(select);
            }
        });
    }

    private static NamedRelation Named(RangeVar range) =>
        new(range.Schemaname.Length == 0 ? null : range.Schemaname, range.Relname, range.Alias is { Aliasname.Length: > 0 } alias ? alias.Aliasname : null);

    private static IEnumerable<string> Names(IEnumerable<Node> nodes) => nodes.Where(node => node.String is not null).Select(node => node.String.Sval);

    /// <summary>
    /// Reads one target list: a plain reference returned as it is stays the server's to describe (the proxy then masks
    /// it by its source); anything else is a computation, and every reference inside it a use. In a list written into a
    /// table, plain references are uses too: their values would leave the mask's reach.
    /// </summary>
    private static void ReadTargets(
        IEnumerable<Node> targets, bool written, List<ColumnUse> computed, List<string> bare, List<(string, IReadOnlyList<ColumnUse>)> aliases)
    {
        foreach (Node target in targets)
        {
            if (target.ResTarget is not { Val: { } value } result)
            {
                continue;
            }

            List<ColumnUse> sources = References(value);
            if (result.Name.Length > 0)
            {
                aliases.Add((result.Name, sources));
            }

            if (value.ColumnRef is { } plain && !written)
            {
                // t.* in a target list is expanded by the server into columns it describes; one name alone may be a row.
                if (plain.Fields.Count == 1 && plain.Fields[0].String is { } only)
                {
                    bare.Add(only.Sval);
                }

                continue;
            }

            computed.AddRange(sources);
        }
    }

    private static List<ColumnUse> References(IMessage value)
    {
        var uses = new List<ColumnUse>();
        StatementClassifier.Walk(value, node =>
        {
            if (node is ColumnRef reference && reference.Fields.Count > 0)
            {
                Node last = reference.Fields[^1];
                string? qualifier = reference.Fields.Count >= 2 ? reference.Fields[^2].String?.Sval : null;
                uses.Add(new ColumnUse(qualifier, last.String?.Sval));
            }
        });
        return uses;
    }
}
