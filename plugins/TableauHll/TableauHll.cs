using System.Globalization;
using Microsoft.Extensions.Logging;
using PgProxy.Abstractions;
using PgProxy.Plugins.TableauHll.Analysis;
using PgProxy.Plugins.TableauHll.Metadata;
using PgProxy.Sql;

namespace PgProxy.Plugins.TableauHll;

/// <summary>
/// The <c>tableau_hll</c> plugin: makes a BI tool that does not know the hll extension count distinct values of hll
/// columns correctly. Every <c>count(DISTINCT x)</c>, <c>count(DISTINCT CAST(x AS TEXT))</c> and
/// <c>count(DISTINCT x::text)</c> whose <c>x</c> is a column of type hll becomes
/// <c>hll_cardinality(hll_union_agg(x))::bigint</c>; the rest of the query stays byte for byte as it was.
/// Configured as <c>{plugin: tableau_hll, function: rewrite_query}</c>.
/// </summary>
public static class TableauHll
{
    /// <summary>How long the column types of a table are trusted before they are asked again.</summary>
    public static readonly TimeSpan DefaultMetadataTimeToLive = TimeSpan.FromSeconds(60);

    /// <summary>How many distinct query texts keep their analysis.</summary>
    public const int DefaultCacheSize = 10_000;

    private static ParseCache<QueryAnalysis> analyses = new(DefaultCacheSize);
    private static ColumnTypeCache columnTypes = new(DefaultMetadataTimeToLive, TimeProvider.System);

    /// <summary>Settings from the configuration's <c>plugins</c> entry: <c>metadata-ttl</c> (e.g. 60s, 5m, 500ms) and <c>cache-size</c>.</summary>
    /// <exception cref="ArgumentException">An unknown setting or a value that does not parse.</exception>
    public static void Configure(IReadOnlyDictionary<string, string> settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        TimeSpan timeToLive = DefaultMetadataTimeToLive;
        int cacheSize = DefaultCacheSize;
        foreach ((string key, string value) in settings)
        {
            switch (key)
            {
                case "metadata-ttl":
                    timeToLive = ParseDuration(key, value);
                    break;
                case "cache-size":
                    cacheSize = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int size) && size > 0
                        ? size
                        : throw new ArgumentException($"cache-size: '{value}' is not a positive whole number");
                    break;
                default:
                    throw new ArgumentException($"unknown setting '{key}': tableau_hll knows metadata-ttl and cache-size");
            }
        }

        analyses = new ParseCache<QueryAnalysis>(cacheSize);
        columnTypes = new ColumnTypeCache(timeToLive, TimeProvider.System);
    }

    /// <summary>Rewrites the distinct counts of hll columns in a simple query or a Parse.</summary>
    public static ValueTask<QueryDecision> RewriteQuery(QueryMessage query, ISessionContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(context);
        if (!QueryAnalyzer.MayContainDistinctCount(query.Text))
        {
            return new(QueryDecision.Continue);
        }

        if (!analyses.TryGetValue(query.Text, out QueryAnalysis? analysis))
        {
            ValueTask<QueryAnalysis> analyzing = QueryAnalyzer.AnalyzeAsync(query.Text, cancellationToken);
            if (!analyzing.IsCompletedSuccessfully)
            {
                return AnalyzeAndRewriteAsync(query.Text, analyzing, context, cancellationToken);
            }

            analysis = Remember(query.Text, analyzing.Result);
        }

        return Decide(query.Text, analysis, context, cancellationToken);
    }

    internal static ColumnTypeCache ColumnTypes => columnTypes;

    /// <summary>Keeps an analysis by its text; when another session stored one meanwhile, that one is used.</summary>
    private static QueryAnalysis Remember(string text, QueryAnalysis analysis) =>
        analyses.GetOrAdd(text, analysis, static (_, analysis) => analysis);

    private static async ValueTask<QueryDecision> AnalyzeAndRewriteAsync(
        string text, ValueTask<QueryAnalysis> analyzing, ISessionContext context, CancellationToken cancellationToken)
    {
        QueryAnalysis analysis = Remember(text, await analyzing.ConfigureAwait(false));
        return await Decide(text, analysis, context, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>With the query's analysis known: nothing to do, or the column types to learn and the rewrite.</summary>
    private static ValueTask<QueryDecision> Decide(string text, QueryAnalysis analysis, ISessionContext context, CancellationToken cancellationToken)
    {
        if (analysis.Calls.Count == 0)
        {
            return new(QueryDecision.Continue);
        }

        ValueTask<IColumnTypes> types;
        try
        {
            types = columnTypes.GetAsync(analysis.Relations, context, cancellationToken);
        }
        catch (UpstreamQueryException exception)
        {
            return new(LeaveAlone(context, exception));
        }

        return types.IsCompletedSuccessfully
            ? new(Rewrite(text, analysis, types.Result, context))
            : AwaitAndRewriteAsync(text, analysis, types, context);
    }

    /// <summary>The query with each call over an hll column replaced; the same text when there is none.</summary>
    internal static string Apply(string text, QueryAnalysis analysis, IColumnTypes types)
    {
        SqlEditor? editor = null;
        foreach (DistinctCountCall call in analysis.Calls)
        {
            if (call.Column.Resolve(types) == true)
            {
                (editor ??= new SqlEditor(text)).Replace(call.Start, call.End - call.Start, call.Replacement);
            }
        }

        return editor is null ? text : editor.Apply();
    }

    private static async ValueTask<QueryDecision> AwaitAndRewriteAsync(string text, QueryAnalysis analysis, ValueTask<IColumnTypes> pending, ISessionContext context)
    {
        IColumnTypes types;
        try
        {
            types = await pending.ConfigureAwait(false);
        }
        catch (UpstreamQueryException exception)
        {
            return LeaveAlone(context, exception);
        }

        return Rewrite(text, analysis, types, context);
    }

    private static QueryDecision Rewrite(string text, QueryAnalysis analysis, IColumnTypes types, ISessionContext context)
    {
        string rewritten = Apply(text, analysis, types);
        return ReferenceEquals(rewritten, text) ? QueryDecision.Continue : QueryDecision.Rewrite(rewritten);
    }

    /// <summary>Without the column types the query cannot be judged: it goes as it is, and the intercept log says why.</summary>
    private static QueryDecision LeaveAlone(ISessionContext context, UpstreamQueryException exception)
    {
        PluginLog.ColumnTypesUnavailable(context.Logger, exception.Message);
        return QueryDecision.Continue;
    }

    private static TimeSpan ParseDuration(string key, string value)
    {
        (string number, double scale) = value switch
        {
            _ when value.EndsWith("ms", StringComparison.Ordinal) => (value[..^2], 0.001),
            _ when value.EndsWith('s') => (value[..^1], 1),
            _ when value.EndsWith('m') => (value[..^1], 60),
            _ when value.EndsWith('h') => (value[..^1], 3600),
            _ => (value, 1),
        };
        return double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double amount) && amount >= 0
            ? TimeSpan.FromSeconds(amount * scale)
            : throw new ArgumentException($"{key}: '{value}' is not a duration (e.g. 60s, 5m, 500ms)");
    }
}

internal static partial class PluginLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "tableau_hll: query left unchanged: the column types could not be read: {Reason}")]
    public static partial void ColumnTypesUnavailable(ILogger logger, string reason);
}
