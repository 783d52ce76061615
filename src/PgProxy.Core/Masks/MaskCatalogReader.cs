using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;
using PgProxy.Core.Rules;
using PgProxy.Sql;
using PgQuery;

namespace PgProxy.Core.Masks;

/// <summary>
/// Reads one database's <see cref="MaskCatalog"/> with metadata queries on a session's own connection: every relation
/// (pg_class), the masked columns of tables with their types (pg_attribute, pg_type), then level by level the views and
/// materialized views whose rewrite rules depend on a relation with masked columns (pg_depend, pg_rewrite), each
/// definition (pg_get_viewdef) parsed to trace every output column to what it is made of.
/// </summary>
internal static class MaskCatalogReader
{
    /// <summary>Levels of views on views followed at most; a view deeper than this is refused as untraceable.</summary>
    private const int MaxViewDepth = 16;

    // Every relation a result column can come from (sequences too: SELECT last_value FROM a sequence names it); only
    // indexes cannot, and they are most of pg_class in a large database.
    private const string RelationsQuery =
        "SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace " +
        "WHERE c.relkind NOT IN ('i', 'I')";

    /// <summary>Runs one metadata query on the session's connection.</summary>
    public delegate Task<UpstreamQueryResult> QueryRunner(string sql, CancellationToken cancellationToken);

    public static async Task<MaskCatalog> ReadAsync(IReadOnlyList<Mask> masks, QueryRunner query, ILogger log, long sessionId, CancellationToken cancellationToken)
    {
        UpstreamQueryResult relationRows = await query(RelationsQuery, cancellationToken).ConfigureAwait(false);
        var relations = new List<CatalogRelation>(relationRows.Rows.Count);
        foreach (IReadOnlyList<string?> row in relationRows.Rows)
        {
            relations.Add(new CatalogRelation(ParseOid(row[0]), row[1] ?? "", row[2] ?? "", row[3] is { Length: > 0 } kind ? kind[0] : 'r'));
        }

        var catalog = new MaskCatalog(relations);
        string names = string.Join(", ", masks.SelectMany(mask => mask.Config.Columns).Select(column => Literal(column.Column)).Distinct(StringComparer.Ordinal));
        UpstreamQueryResult columnRows = await query(
            "SELECT a.attrelid, a.attnum, a.attname, t.typcategory, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a " +
            "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attname IN (" + names + ")",
            cancellationToken).ConfigureAwait(false);
        var frontier = new List<CatalogRelation>();
        foreach (IReadOnlyList<string?> row in columnRows.Rows)
        {
            if (catalog.Relation(ParseOid(row[0])) is not { } relation)
            {
                continue;
            }

            string column = row[2] ?? "";
            Mask? mask = masks.FirstOrDefault(candidate => candidate.Config.Columns.Any(named => named.Covers(relation.Schema, relation.Name, column)));
            if (mask is null)
            {
                continue;
            }

            relation.Columns[ParseAttributeNumber(row[1])] = Verdict(mask, relation, column, Category(row[3]), row[4], log);
            if (!frontier.Contains(relation))
            {
                frontier.Add(relation);
            }
        }

        var traced = new HashSet<uint>(frontier.Select(relation => relation.Oid));
        for (int depth = 0; frontier.Count > 0; depth++)
        {
            List<CatalogRelation> views = await ReadDependentViewsAsync(catalog, frontier, traced, query, depth >= MaxViewDepth, log, cancellationToken).ConfigureAwait(false);
            frontier = views;
        }

        InterceptLog.MaskCatalogRead(log, sessionId, catalog.RelationCount, traced.Count);
        return catalog;
    }

    /// <summary>The views on <paramref name="frontier"/> not traced yet, with their output columns traced.</summary>
    private static async Task<List<CatalogRelation>> ReadDependentViewsAsync(
        MaskCatalog catalog, List<CatalogRelation> frontier, HashSet<uint> traced, QueryRunner query, bool tooDeep, ILogger log, CancellationToken cancellationToken)
    {
        string oids = string.Join(",", frontier.Select(relation => relation.Oid.ToString(CultureInfo.InvariantCulture)));
        UpstreamQueryResult rows = await query(
            "SELECT v.oid, a.attnum, a.attname, t.typcategory, pg_catalog.format_type(a.atttypid, a.atttypmod), " +
            "CASE WHEN a.attnum = 1 THEN pg_catalog.pg_get_viewdef(v.oid) END " +
            "FROM pg_catalog.pg_class v JOIN pg_catalog.pg_attribute a ON a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped " +
            "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid WHERE v.oid IN (SELECT r.ev_class FROM pg_catalog.pg_depend d " +
            "JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass " +
            "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND r.ev_class <> d.refobjid " +
            "AND d.refobjid = ANY ('{" + oids + "}'::pg_catalog.oid[])) ORDER BY v.oid, a.attnum",
            cancellationToken).ConfigureAwait(false);

        var views = new List<CatalogRelation>();
        foreach (IGrouping<uint, IReadOnlyList<string?>> group in rows.Rows.GroupBy(row => ParseOid(row[0])))
        {
            if (!traced.Add(group.Key) || catalog.Relation(group.Key) is not { } view)
            {
                continue;
            }

            IReadOnlyList<string?>[] columns = [.. group];
            string? definition = columns[0][5];
            ColumnVerdict fallback = frontier.SelectMany(relation => relation.Columns.Values).First();
            ViewOutputs outputs = tooDeep || definition is null
                ? new ViewOutputs([], untraceable: true) { UntraceableVerdict = Refused(fallback, "in a view PgProxy cannot trace") }
                : TraceView(definition, catalog, fallback);
            for (int i = 0; i < columns.Length; i++)
            {
                IReadOnlyList<string?> column = columns[i];
                short number = ParseAttributeNumber(column[1]);
                string name = column[2] ?? "";
                if (outputs.Source(number - 1) is not { } source)
                {
                    continue;
                }

                view.Columns[number] = source.Refusal is not null
                    ? source with { Column = name }
                    : Verdict(source.Mask, view, name, Category(column[3]), column[4], log);
            }

            if (view.Columns.Count > 0)
            {
                views.Add(view);
            }
        }

        return views;
    }

    private static ColumnVerdict Verdict(Mask mask, CatalogRelation relation, string column, char category, string? type, ILogger log)
    {
        if (mask.KeepsTypeCategory(category))
        {
            return new ColumnVerdict(column, mask, null);
        }

        // The file cannot say a column's type; the catalog can. This is the configuration's error, named as such.
        InterceptLog.MaskTypeMismatch(log, mask.Name, mask.Config.Line, mask.Config.With.ToString(), type ?? "?", $"{relation}.{column}");
        return new ColumnVerdict(column, mask, string.Create(
            CultureInfo.InvariantCulture,
            $"refused by PgProxy {mask.DisplayName}: its function {mask.Config.With} cannot keep the type {type} of {relation}.{column} (a configuration error at line {mask.Config.Line})"));
    }

    /// <summary>What each output column of a view is made of, by position.</summary>
    private sealed class ViewOutputs(List<ColumnVerdict?> sources, bool untraceable)
    {
        /// <summary>The verdict of output column <paramref name="index"/>; null when it carries no masked value.</summary>
        public ColumnVerdict? Source(int index) =>
            untraceable ? UntraceableVerdict : index < sources.Count ? sources[index] : null;

        /// <summary>Set by the reader for an untraceable view: every column refused by the first mask it depends on.</summary>
        public ColumnVerdict? UntraceableVerdict { get; init; }
    }

    /// <summary>
    /// Traces a view definition's output columns: a plain reference to a masked column is masked the same way; an
    /// expression over one, or a reference the names cannot follow (into a subquery or a CTE, or a whole row), is
    /// refused as a computation is. A definition the parser cannot read, or of another shape, refuses every column.
    /// </summary>
    private static ViewOutputs TraceView(string definition, MaskCatalog catalog, ColumnVerdict fallback)
    {
        SelectStmt? select;
        try
        {
            PgQuery.ParseResult tree = PostgresParser.Parse(definition);
            select = tree.Stmts.Count == 1 ? tree.Stmts[0].Stmt.SelectStmt : null;
        }
        catch (SqlParseException)
        {
            select = null;
        }

        // Every relation the definition names, and their masked columns by name.
        var named = new List<(NamedRelation Relation, CatalogRelation[] Matches)>();
        var maskedNames = new Dictionary<string, ColumnVerdict>(StringComparer.Ordinal);
        if (select is not null)
        {
            StatementClassifier.Walk(select, node =>
            {
                if (node is RangeVar range)
                {
                    var relation = new NamedRelation(range.Schemaname.Length == 0 ? null : range.Schemaname, range.Relname, range.Alias is { Aliasname.Length: > 0 } alias ? alias.Aliasname : null);
                    CatalogRelation[] matches = [.. catalog.Named(relation.Schema, relation.Name)];
                    named.Add((relation, matches));
                    foreach (CatalogRelation match in matches)
                    {
                        foreach (ColumnVerdict verdict in match.Columns.Values)
                        {
                            maskedNames.TryAdd(verdict.Column, verdict);
                        }
                    }
                }
            });
        }

        if (select is null)
        {
            return new ViewOutputs([], untraceable: true) { UntraceableVerdict = Refused(maskedNames.Values.FirstOrDefault() ?? fallback, "in a view whose definition PgProxy cannot read") };
        }

        // A set operation (UNION ...) returns by position what each branch returns: the strictest verdict wins.
        var branches = new List<SelectStmt>();
        var pending = new Stack<SelectStmt>();
        pending.Push(select);
        while (pending.TryPop(out SelectStmt? branch))
        {
            if (branch.Op != SetOperation.SetopNone && branch.Larg is not null && branch.Rarg is not null)
            {
                pending.Push(branch.Rarg);
                pending.Push(branch.Larg);
            }
            else
            {
                branches.Add(branch);
            }
        }

        var sources = new List<ColumnVerdict?>();
        foreach (SelectStmt branch in branches)
        {
            for (int index = 0; index < branch.TargetList.Count; index++)
            {
                ColumnVerdict? verdict = branch.TargetList[index].ResTarget?.Val is { } value ? TraceOutput(value, named, maskedNames) : null;
                while (sources.Count <= index)
                {
                    sources.Add(null);
                }

                sources[index] = Stricter(sources[index], verdict);
            }
        }

        return new ViewOutputs(sources, untraceable: false);
    }

    private static ColumnVerdict? TraceOutput(Node value, List<(NamedRelation Relation, CatalogRelation[] Matches)> named, Dictionary<string, ColumnVerdict> maskedNames)
    {
        if (maskedNames.Count == 0)
        {
            return null;
        }

        if (value.ColumnRef is { Fields.Count: > 0 } reference && reference.Fields[^1].String is { } last)
        {
            string? qualifier = reference.Fields.Count >= 2 ? reference.Fields[^2].String?.Sval : null;
            var candidates = named.Where(n => qualifier is null || string.Equals(n.Relation.Alias ?? n.Relation.Name, qualifier, StringComparison.Ordinal)).ToList();
            if (candidates.Count > 0 && candidates.All(candidate => candidate.Matches.Length > 0))
            {
                ColumnVerdict? found = candidates.SelectMany(candidate => candidate.Matches)
                    .SelectMany(match => match.Columns.Values)
                    .FirstOrDefault(verdict => string.Equals(verdict.Column, last.Sval, StringComparison.Ordinal));
                return found;
            }

            // A qualifier of a subquery or CTE, or a relation the catalog does not have: the name is all there is to go by.
            return maskedNames.TryGetValue(last.Sval, out ColumnVerdict? byName) ? Refused(byName, "a column PgProxy cannot trace to its source") : null;
        }

        ColumnVerdict? over = null;
        StatementClassifier.Walk(value, node =>
        {
            if (over is null && node is ColumnRef inner && inner.Fields.Count > 0)
            {
                Node last = inner.Fields[^1];
                if (last.AStar is not null)
                {
                    over = maskedNames.Values.First();
                }
                else if (last.String is { } column && maskedNames.TryGetValue(column.Sval, out ColumnVerdict? verdict))
                {
                    over = verdict;
                }
                else if (inner.Fields.Count == 1 && last.String is { } row
                    && named.Any(n => string.Equals(n.Relation.Alias ?? n.Relation.Name, row.Sval, StringComparison.Ordinal) && n.Matches.Any(m => m.Columns.Count > 0)))
                {
                    over = maskedNames.Values.First();
                }
            }
        });
        return over is null ? null : Refused(over, "an expression over a masked column");
    }

    private static ColumnVerdict Refused(ColumnVerdict source, string what) =>
        source with { Refusal = $"refused by PgProxy {source.Mask.DisplayName}: a view column is {what} ({source.Column})" };

    private static ColumnVerdict? Stricter(ColumnVerdict? a, ColumnVerdict? b) =>
        a is null ? b : b is null ? a : b.Refuses && !a.Refuses ? b : a;

    private static uint ParseOid(string? text) => uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out uint oid) ? oid : 0;

    private static short ParseAttributeNumber(string? text) => short.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out short number) ? number : (short)0;

    private static char Category(string? text) => text is { Length: > 0 } ? text[0] : 'X';

    /// <summary>A SQL string literal of a column name (the names come from the configuration, so they are quoted, not trusted).</summary>
    private static string Literal(string text)
    {
        var literal = new StringBuilder(text.Length + 2).Append('\'');
        foreach (char c in text)
        {
            literal.Append(c == '\'' ? "''" : c.ToString());
        }

        return literal.Append('\'').ToString();
    }
}
