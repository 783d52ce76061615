// A class-based query interceptor: refuses DDL from a reporting tool, with a SQLSTATE the tool understands.
// Configured as {plugin: block_ddl, function: block_ddl}; PgProxy finds the class BlockDdl by PascalCase.
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

public sealed class BlockDdl : IQueryInterceptor
{
    public ValueTask<QueryDecision> InterceptQueryAsync(QueryMessage query, ISessionContext session, CancellationToken cancellationToken)
    {
        if (Ddl.IsMatch(query.Text))
        {
            session.Logger.LogInformation("refusing DDL from {User}", session.User);
            return ValueTask.FromResult(QueryDecision.Refuse("42501", "this connection is read-only: DDL is not allowed"));
        }

        return ValueTask.FromResult(QueryDecision.Continue);
    }

    private static readonly Regex Ddl = new(@"^\s*(CREATE|ALTER|DROP|TRUNCATE)\b", RegexOptions.IgnoreCase | RegexOptions.Compiled);
}
