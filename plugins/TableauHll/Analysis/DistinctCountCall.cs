namespace PgProxy.Plugins.TableauHll.Analysis;

/// <summary>
/// One <c>count(DISTINCT x)</c> (or <c>count(DISTINCT CAST(x AS TEXT))</c>, <c>x::text</c>) of a query: where its text is
/// (string indexes, end exclusive), the column as written, and how the column resolves.
/// </summary>
/// <param name="Start">String index of the call's first character (its function name).</param>
/// <param name="End">String index just past its closing parenthesis.</param>
/// <param name="ColumnText">The column reference exactly as the query writes it.</param>
/// <param name="Column">The column reference and the scope it resolves in.</param>
/// <param name="NameAsCount">
/// True when the call is a whole unnamed select-list entry: PostgreSQL names that column <c>count</c>, and the rewrite
/// says <c>AS count</c> so the client still gets that name.
/// </param>
internal sealed record DistinctCountCall(int Start, int End, string ColumnText, bool NameAsCount, ColumnReference Column)
{
    /// <summary>The text that replaces the call when the column is of type hll; built once, as the analysis is cached.</summary>
    public string Replacement { get; } = NameAsCount
        ? $"hll_cardinality(hll_union_agg({ColumnText}))::bigint AS count"
        : $"hll_cardinality(hll_union_agg({ColumnText}))::bigint";
}

/// <summary>What a query text holds for the plugin: its distinct counts over column references, and the tables they may read.</summary>
internal sealed class QueryAnalysis(IReadOnlyList<DistinctCountCall> calls)
{
    /// <summary>A query with nothing to rewrite.</summary>
    public static QueryAnalysis Nothing { get; } = new([]);

    public IReadOnlyList<DistinctCountCall> Calls { get; } = calls;

    /// <summary>Every table whose columns decide whether a call is rewritten, each once.</summary>
    public IReadOnlyList<RelationName> Relations { get; } = [.. calls.SelectMany(call => call.Column.Relations()).Distinct()];
}
