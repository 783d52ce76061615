using PgProxy.Abstractions;

namespace PgProxy.Core.Plugins;

/// <summary>
/// A plugin's query function or class, seen as an <see cref="IQueryInterceptor"/>. The function is a delegate built once
/// at load; a <see cref="RefusedException"/> it throws, at once or from its task, becomes a refusal. Any other exception
/// reaches the engine, which applies the interceptor's failure policy.
/// </summary>
internal sealed class QueryInterceptorAdapter : IQueryInterceptor
{
    private readonly Func<QueryMessage, ISessionContext, CancellationToken, ValueTask<QueryDecision>> intercept;

    public QueryInterceptorAdapter(string description, Func<QueryMessage, ISessionContext, CancellationToken, ValueTask<QueryDecision>> intercept)
    {
        Description = description;
        this.intercept = intercept;
    }

    /// <summary>What the reference resolved to, for logs: <c>Type.Method(parameters)</c> or the class name.</summary>
    public string Description { get; }

    public ValueTask<QueryDecision> InterceptQueryAsync(QueryMessage query, ISessionContext session, CancellationToken cancellationToken)
    {
        ValueTask<QueryDecision> pending;
        try
        {
            pending = intercept(query, session, cancellationToken);
        }
        catch (RefusedException e)
        {
            return new(QueryDecision.Refuse(e.SqlState, e.Message));
        }

        return pending.IsCompletedSuccessfully ? pending : AwaitRefusal(pending);
    }

    public override string ToString() => Description;

    /// <summary>Adapts a function of the query text: null or the same text (ordinal) continues, other text rewrites.</summary>
    public static Func<QueryMessage, ISessionContext, CancellationToken, ValueTask<QueryDecision>> FromText(
        Func<string, ISessionContext, CancellationToken, ValueTask<string?>> rewrite) =>
        (query, session, cancellationToken) =>
        {
            ValueTask<string?> pending = rewrite(query.Text, session, cancellationToken);
            return pending.IsCompletedSuccessfully ? new(Decide(query.Text, pending.Result)) : AwaitText(pending, query.Text);
        };

    internal static QueryDecision Decide(string original, string? rewritten) =>
        rewritten is null || string.Equals(original, rewritten, StringComparison.Ordinal)
            ? QueryDecision.Continue
            : QueryDecision.Rewrite(rewritten);

    private static async ValueTask<QueryDecision> AwaitText(ValueTask<string?> pending, string original) =>
        Decide(original, await pending.ConfigureAwait(false));

    private static async ValueTask<QueryDecision> AwaitRefusal(ValueTask<QueryDecision> pending)
    {
        try
        {
            return await pending.ConfigureAwait(false);
        }
        catch (RefusedException e)
        {
            return QueryDecision.Refuse(e.SqlState, e.Message);
        }
    }
}

/// <summary>A plugin's start-up function or class, seen as an <see cref="IStartupInterceptor"/>; see <see cref="QueryInterceptorAdapter"/>.</summary>
internal sealed class StartupInterceptorAdapter : IStartupInterceptor
{
    private readonly Func<StartupRequest, ISessionContext, CancellationToken, ValueTask<StartupDecision>> intercept;

    public StartupInterceptorAdapter(string description, Func<StartupRequest, ISessionContext, CancellationToken, ValueTask<StartupDecision>> intercept)
    {
        Description = description;
        this.intercept = intercept;
    }

    /// <summary>What the reference resolved to, for logs.</summary>
    public string Description { get; }

    public ValueTask<StartupDecision> InterceptStartupAsync(StartupRequest startup, ISessionContext session, CancellationToken cancellationToken)
    {
        ValueTask<StartupDecision> pending;
        try
        {
            pending = intercept(startup, session, cancellationToken);
        }
        catch (RefusedException e)
        {
            return new(StartupDecision.Refuse(e.SqlState, e.Message));
        }

        return pending.IsCompletedSuccessfully ? pending : AwaitRefusal(pending);
    }

    public override string ToString() => Description;

    private static async ValueTask<StartupDecision> AwaitRefusal(ValueTask<StartupDecision> pending)
    {
        try
        {
            return await pending.ConfigureAwait(false);
        }
        catch (RefusedException e)
        {
            return StartupDecision.Refuse(e.SqlState, e.Message);
        }
    }
}

/// <summary>A plugin's response function or class, seen as an <see cref="IResponseInterceptor"/>; its kinds are read once.</summary>
internal sealed class ResponseInterceptorAdapter(string description, ResponseKinds kinds, Func<ResponseMessage, ISessionContext, CancellationToken, ValueTask> intercept)
    : IResponseInterceptor
{
    /// <summary>What the reference resolved to, for logs.</summary>
    public string Description { get; } = description;

    public ResponseKinds Kinds { get; } = kinds;

    public ValueTask InterceptResponseAsync(ResponseMessage message, ISessionContext session, CancellationToken cancellationToken) =>
        intercept(message, session, cancellationToken);

    public override string ToString() => Description;
}
