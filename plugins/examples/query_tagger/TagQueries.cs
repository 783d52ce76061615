using PgProxy.Abstractions;

namespace QueryTagger;

/// <summary>
/// Prefixes every query with a comment naming the client application, so the server's logs and pg_stat_statements
/// show who sent it. Configured as {plugin: query_tagger, function: tag_queries}.
/// </summary>
public sealed class TagQueries : IQueryInterceptor
{
    public ValueTask<QueryDecision> InterceptQueryAsync(QueryMessage query, ISessionContext session, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(session);
        string application = (session.ApplicationName ?? "unknown").Replace("*/", string.Empty, StringComparison.Ordinal);
        return ValueTask.FromResult(QueryDecision.Rewrite($"/* app={application} */ {query.Text}"));
    }
}
