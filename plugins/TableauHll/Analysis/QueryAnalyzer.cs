using System.Collections.Concurrent;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Google.Protobuf.Reflection;
using PgProxy.Sql;
using PgQuery;

namespace PgProxy.Plugins.TableauHll.Analysis;

/// <summary>
/// Finds the distinct counts of a query with PostgreSQL's own parser, and for each the FROM scope its column belongs to:
/// aliases, schema-qualified and quoted names, joins, subqueries, common table expressions, cursors, several statements.
/// The result depends on the text only (not on the database), so it is cached by text.
/// </summary>
internal static class QueryAnalyzer
{
    // Message-typed fields per message type: the walk skips scalars without boxing them.
    private static readonly ConcurrentDictionary<MessageDescriptor, FieldDescriptor[]> MessageFields = new();
    private static readonly FieldDescriptor?[] NodeFields = BuildNodeFields();

    /// <summary>
    /// Cheap test before parsing: a query without both words cannot hold a distinct count (case-insensitive, so it may
    /// say yes for text in comments or literals; the parser decides then).
    /// </summary>
    public static bool MayContainDistinctCount(string sql) =>
        sql.Contains("distinct", StringComparison.OrdinalIgnoreCase) && sql.Contains("count", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Analyzes a query without blocking: an ordinary query at once, one that nests deeply after the parser's
    /// deep-stack thread has read it. A query PostgreSQL cannot parse has nothing to rewrite (the server will say
    /// what is wrong).
    /// </summary>
    public static ValueTask<QueryAnalysis> AnalyzeAsync(string sql, CancellationToken cancellationToken)
    {
        if (!MayContainDistinctCount(sql))
        {
            return new(QueryAnalysis.Nothing);
        }

        ValueTask<ParseResult> parsing;
        try
        {
            parsing = PostgresParser.ParseAsync(sql, cancellationToken);
        }
        catch (SqlParseException)
        {
            return new(QueryAnalysis.Nothing);
        }

        return parsing.IsCompletedSuccessfully ? new(Analyze(sql, parsing.Result)) : AwaitParseAsync(sql, parsing);
    }

    /// <summary>The same, blocking the caller while a deep query is parsed (for tests and benchmarks).</summary>
    public static QueryAnalysis Analyze(string sql)
    {
        if (!MayContainDistinctCount(sql))
        {
            return QueryAnalysis.Nothing;
        }

        try
        {
            return Analyze(sql, PostgresParser.Parse(sql));
        }
        catch (SqlParseException)
        {
            return QueryAnalysis.Nothing;
        }
    }

    private static async ValueTask<QueryAnalysis> AwaitParseAsync(string sql, ValueTask<ParseResult> parsing)
    {
        try
        {
            return Analyze(sql, await parsing.ConfigureAwait(false));
        }
        catch (SqlParseException)
        {
            return QueryAnalysis.Nothing;
        }
    }

    private static QueryAnalysis Analyze(string sql, ParseResult tree)
    {
        var walk = new Walk(sql);
        try
        {
            foreach (RawStmt statement in tree.Stmts)
            {
                walk.Visit(statement.Stmt, new Scope(null, null));
            }
        }
        catch (TooDeepException)
        {
            // The walk recurses once per tree level on the session's thread: a query nested beyond any BI tool's is left alone.
            return QueryAnalysis.Nothing;
        }

        return walk.Calls.Count == 0 ? QueryAnalysis.Nothing : new QueryAnalysis(walk.Calls);
    }

    private static FieldDescriptor?[] BuildNodeFields()
    {
        IList<FieldDescriptor> fields = Node.Descriptor.Fields.InFieldNumberOrder();
        var byNumber = new FieldDescriptor?[fields.Max(field => field.FieldNumber) + 1];
        foreach (FieldDescriptor field in fields)
        {
            byNumber[field.FieldNumber] = field;
        }

        return byNumber;
    }

    private static FieldDescriptor[] FieldsOf(MessageDescriptor descriptor) =>
        MessageFields.GetOrAdd(descriptor, static d => [.. d.Fields.InFieldNumberOrder().Where(field => field.FieldType == FieldType.Message)]);

    private static string? StringValue(Node node) => node.NodeCase == Node.NodeOneofCase.String ? node.String.Sval : null;

    /// <summary>Tree levels the walk follows before it gives up (each level is a few small stack frames).</summary>
    internal const int MaxDepth = 400;

    private sealed class TooDeepException : Exception
    {
    }

    private sealed class Walk(string sql)
    {
        private readonly Utf8Offsets offsets = new(sql);
        private SqlTokens? tokens;
        private int depth;

        public List<DistinctCountCall> Calls { get; } = [];

        private SqlTokens Tokens => tokens ??= PostgresParser.Scan(sql);

        public void Visit(IMessage? message, Scope scope)
        {
            if (++depth > MaxDepth)
            {
                throw new TooDeepException();
            }

            try
            {
                VisitMessage(message, scope);
            }
            finally
            {
                depth--;
            }
        }

        private void VisitMessage(IMessage? message, Scope scope)
        {
            switch (message)
            {
                case null:
                    return;
                case Node node:
                    if (node.NodeCase != Node.NodeOneofCase.None && NodeFields[(int)node.NodeCase] is { } field)
                    {
                        Visit(field.Accessor.GetValue(node) as IMessage, scope);
                    }

                    return;
                case SelectStmt select:
                    VisitSelect(select, scope);
                    return;
                case FuncCall call:
                    Consider(call, scope, nameAsCount: false);
                    break;
            }

            VisitChildren(message, scope, skip: null);
        }

        private void VisitChildren(IMessage message, Scope scope, Func<int, bool>? skip)
        {
            foreach (FieldDescriptor field in FieldsOf(message.Descriptor))
            {
                if (skip?.Invoke(field.FieldNumber) == true)
                {
                    continue;
                }

                object? value = field.Accessor.GetValue(message);
                if (field.IsRepeated)
                {
                    foreach (object? item in (System.Collections.IList)value!)
                    {
                        Visit(item as IMessage, scope);
                    }
                }
                else
                {
                    Visit(value as IMessage, scope);
                }
            }
        }

        /// <summary>A SELECT: its WITH first, then its FROM (which makes its scope), then everything else in that scope.</summary>
        private Scope VisitSelect(SelectStmt select, Scope outer)
        {
            Scope withScope = outer;
            if (select.WithClause is { } with)
            {
                var ctes = new Dictionary<string, DerivedItemFactory>(StringComparer.Ordinal);
                withScope = new Scope(outer, ctes);
                foreach (Node cteNode in with.Ctes)
                {
                    if (cteNode.NodeCase != Node.NodeOneofCase.CommonTableExpr)
                    {
                        continue;
                    }

                    CommonTableExpr cte = cteNode.CommonTableExpr;
                    // Registered before its query is read, so a recursive reference finds it (with no columns yet).
                    var factory = new DerivedItemFactory([]);
                    ctes[cte.Ctename] = factory;
                    if (cte.Ctequery?.NodeCase == Node.NodeOneofCase.SelectStmt)
                    {
                        factory.Columns = Rename(OutputColumnsOf(cte.Ctequery.SelectStmt, withScope), cte.Aliascolnames);
                    }
                    else
                    {
                        Visit(cte.Ctequery, withScope);
                    }
                }
            }

            if (select.Op != SetOperation.SetopNone)
            {
                if (select.Larg is not null)
                {
                    VisitSelect(select.Larg, withScope);
                }

                if (select.Rarg is not null)
                {
                    VisitSelect(select.Rarg, withScope);
                }

                return withScope;
            }

            var scope = new Scope(withScope, null);
            foreach (Node item in select.FromClause)
            {
                AddFromItem(item, scope);
            }

            foreach (Node target in select.TargetList)
            {
                if (target.NodeCase == Node.NodeOneofCase.ResTarget && target.ResTarget.Val?.NodeCase == Node.NodeOneofCase.FuncCall)
                {
                    ResTarget resTarget = target.ResTarget;
                    Consider(resTarget.Val.FuncCall, scope, nameAsCount: resTarget.Name.Length == 0);
                    VisitChildren(resTarget.Val.FuncCall, scope, skip: null);
                }
                else
                {
                    Visit(target, scope);
                }
            }

            VisitChildren(select, scope, skip: static number =>
                number is SelectStmt.FromClauseFieldNumber or SelectStmt.WithClauseFieldNumber or SelectStmt.TargetListFieldNumber
                    or SelectStmt.LargFieldNumber or SelectStmt.RargFieldNumber);
            return scope;
        }

        /// <summary>Adds a FROM item to <paramref name="scope"/>, and walks what it holds (subqueries, join conditions).</summary>
        private void AddFromItem(Node item, Scope scope)
        {
            switch (item.NodeCase)
            {
                case Node.NodeOneofCase.RangeVar:
                    RangeVar table = item.RangeVar;
                    string? alias = table.Alias?.Aliasname;
                    if (table.Schemaname.Length == 0 && scope.FindCommonTableExpression(table.Relname) is { } cte)
                    {
                        scope.Add(Rename(cte.Create(alias ?? table.Relname), table.Alias?.Colnames));
                    }
                    else
                    {
                        scope.Add(new TableItem(new RelationName(table.Schemaname.Length == 0 ? null : table.Schemaname, table.Relname), alias));
                    }

                    break;
                case Node.NodeOneofCase.RangeSubselect:
                    RangeSubselect subselect = item.RangeSubselect;
                    // The subquery sees the enclosing SELECTs' names, not its siblings' (a LATERAL reference to a sibling stays
                    // unresolved, which leaves that call alone). Its columns must not see this scope either: the scope is
                    // about to hold the subquery itself, and a name would then resolve through itself forever.
                    IReadOnlyList<OutputColumn> columns = subselect.Subquery?.NodeCase == Node.NodeOneofCase.SelectStmt
                        ? OutputColumnsOf(subselect.Subquery.SelectStmt, scope.Parent!)
                        : [];
                    scope.Add(new DerivedItem(subselect.Alias?.Aliasname, Rename(columns, subselect.Alias?.Colnames)));
                    break;
                case Node.NodeOneofCase.JoinExpr:
                    JoinExpr join = item.JoinExpr;
                    AddFromItem(join.Larg, scope);
                    AddFromItem(join.Rarg, scope);
                    Visit(join.Quals, scope);
                    break;
                default:
                    scope.Add(new OpaqueItem(AliasOf(item)));
                    Visit(item, scope);
                    break;
            }
        }

        /// <summary>Walks a subquery and returns its output columns, each with the column it passes through, if it is a plain reference.</summary>
        private List<OutputColumn> OutputColumnsOf(SelectStmt select, Scope outer)
        {
            Scope scope = VisitSelect(select, outer);
            SelectStmt first = select;
            while (first.Op != SetOperation.SetopNone && first.Larg is not null)
            {
                first = first.Larg;
            }

            if (!ReferenceEquals(first, select))
            {
                // A set operation: the columns' names come from the first SELECT; its scope was built inside VisitSelect,
                // and a column of a UNION is not "a column of type hll" anyway.
                return [.. first.TargetList.Select(target => new OutputColumn(target.ResTarget?.Name, null, null))];
            }

            var outputs = new List<OutputColumn>();
            foreach (Node target in select.TargetList)
            {
                if (target.NodeCase != Node.NodeOneofCase.ResTarget)
                {
                    continue;
                }

                ResTarget resTarget = target.ResTarget;
                if (resTarget.Val?.NodeCase == Node.NodeOneofCase.ColumnRef)
                {
                    (List<string> qualifier, string? column, bool star) = Split(resTarget.Val.ColumnRef);
                    if (star)
                    {
                        outputs.Add(new OutputColumn(null, null, new StarReference(scope, qualifier)));
                        continue;
                    }

                    if (column is not null)
                    {
                        outputs.Add(new OutputColumn(resTarget.Name.Length > 0 ? resTarget.Name : column, new ColumnReference(scope, qualifier, column), null));
                        continue;
                    }
                }

                outputs.Add(new OutputColumn(resTarget.Name.Length > 0 ? resTarget.Name : null, null, null));
            }

            return outputs;
        }

        /// <summary>Records <paramref name="call"/> when it is <c>count(DISTINCT column)</c> or <c>count(DISTINCT column::text)</c>.</summary>
        private void Consider(FuncCall call, Scope scope, bool nameAsCount)
        {
            if (!call.AggDistinct || call.Args.Count != 1 || call.AggFilter is not null || call.Over is not null || call.AggOrder.Count > 0
                || call.AggWithinGroup || call.FuncVariadic || !IsCount(call.Funcname))
            {
                return;
            }

            Node argument = call.Args[0];
            if (argument.NodeCase == Node.NodeOneofCase.TypeCast && IsText(argument.TypeCast.TypeName))
            {
                argument = argument.TypeCast.Arg;
            }

            if (argument?.NodeCase != Node.NodeOneofCase.ColumnRef)
            {
                return;
            }

            (List<string> qualifier, string? column, bool star) = Split(argument.ColumnRef);
            if (star || column is null || qualifier.Count > 2)
            {
                return;
            }

            if (Span(call.Location, argument.ColumnRef.Location) is not var (start, end, columnText))
            {
                return;
            }

            Calls.Add(new DistinctCountCall(start, end, columnText, nameAsCount, new ColumnReference(scope, qualifier, column)));
        }

        /// <summary>The text of the call (from its name to its closing parenthesis) and of its column reference, from the scanner's tokens.</summary>
        private (int Start, int End, string ColumnText)? Span(int callByteLocation, int columnByteLocation)
        {
            SqlTokens all = Tokens;
            int callToken = all.IndexAt(offsets.ToCharIndex(callByteLocation));
            int columnToken = all.IndexAt(offsets.ToCharIndex(columnByteLocation));
            if (callToken < 0 || columnToken < 0)
            {
                return null;
            }

            int open = callToken;
            while (open < all.Count && all[open].Kind != Token.Ascii40)
            {
                open++;
            }

            int close = open < all.Count ? all.MatchingClose(open) : -1;
            if (close < 0)
            {
                return null;
            }

            // The column reference: name ('.' name)*.
            int last = columnToken;
            while (last + 2 < all.Count && all[last + 1].Kind == Token.Ascii46 && IsName(all[last + 2]))
            {
                last += 2;
            }

            return (all[callToken].Start, all[close].End, sql[all[columnToken].Start..all[last].End]);
        }

        private static bool IsName(SqlToken token) =>
            token.Kind is Token.Ident or Token.Uident || token.KeywordKind != KeywordKind.NoKeyword;

        private static bool IsCount(RepeatedField<Node> name) =>
            name.Count switch
            {
                1 => StringValue(name[0]) == "count",
                2 => StringValue(name[0]) == "pg_catalog" && StringValue(name[1]) == "count",
                _ => false,
            };

        private static bool IsText(TypeName? type) =>
            type is not null && type.ArrayBounds.Count == 0 && type.Typmods.Count == 0 && type.Names.Count switch
            {
                1 => StringValue(type.Names[0]) == "text",
                2 => StringValue(type.Names[0]) == "pg_catalog" && StringValue(type.Names[1]) == "text",
                _ => false,
            };

        /// <summary>A column reference's qualifier (table, or schema and table), its column, and whether it ends in <c>*</c>.</summary>
        private static (List<string> Qualifier, string? Column, bool Star) Split(ColumnRef reference)
        {
            var names = new List<string>(reference.Fields.Count);
            bool star = false;
            foreach (Node field in reference.Fields)
            {
                if (field.NodeCase == Node.NodeOneofCase.AStar)
                {
                    star = true;
                }
                else if (StringValue(field) is { } name)
                {
                    names.Add(name);
                }
            }

            if (star)
            {
                return (names, null, true);
            }

            if (names.Count == 0)
            {
                return (names, null, false);
            }

            string column = names[^1];
            names.RemoveAt(names.Count - 1);
            return (names, column, false);
        }

        private static string? AliasOf(Node item) => item.NodeCase switch
        {
            Node.NodeOneofCase.RangeFunction => item.RangeFunction.Alias?.Aliasname,
            Node.NodeOneofCase.RangeTableFunc => item.RangeTableFunc.Alias?.Aliasname,
            Node.NodeOneofCase.RangeTableSample => item.RangeTableSample.Relation?.RangeVar?.Alias?.Aliasname,
            _ => null,
        };

        private static DerivedItem Rename(DerivedItem item, RepeatedField<Node>? names) =>
            names is null || names.Count == 0 ? item : new DerivedItem(item.Alias, Rename(item.Columns, names));

        /// <summary>Column aliases (<c>AS s(a, b)</c>, <c>WITH c(a, b)</c>) rename the output columns in order.</summary>
        private static IReadOnlyList<OutputColumn> Rename(IReadOnlyList<OutputColumn> columns, RepeatedField<Node>? names)
        {
            if (names is null || names.Count == 0)
            {
                return columns;
            }

            if (columns.Any(column => column.Star is not null))
            {
                // Positions behind a * are not known without the table's columns: the renamed columns resolve to nothing.
                return [.. names.Select(name => new OutputColumn(StringValue(name), null, null))];
            }

            var renamed = new List<OutputColumn>(columns.Count);
            for (int index = 0; index < columns.Count; index++)
            {
                renamed.Add(index < names.Count ? columns[index] with { Name = StringValue(names[index]) } : columns[index]);
            }

            return renamed;
        }
    }
}
