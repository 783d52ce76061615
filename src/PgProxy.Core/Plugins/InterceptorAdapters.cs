using PgProxy.Abstractions;

namespace PgProxy.Core.Plugins;

/// <summary>
/// A plugin's function or class, seen as one of the interceptor interfaces. The function is a delegate built once at
/// load. What it throws, <see cref="RefusedException"/> included, reaches the engine's interceptor runner, which
/// handles it the same way for every kind.
/// </summary>
/// <typeparam name="TIntercept">The delegate the interface's one method forwards to.</typeparam>
internal abstract class InterceptorAdapter<TIntercept>(string description, TIntercept intercept)
    where TIntercept : Delegate
{
    /// <summary>What the reference resolved to, for logs: <c>Type.Method(parameters)</c> or the class name.</summary>
    public string Description { get; } = description;

    protected TIntercept Intercept { get; } = intercept;

    public override string ToString() => Description;
}

/// <summary>A plugin's query function or class, seen as an <see cref="IQueryInterceptor"/>.</summary>
internal sealed class QueryInterceptorAdapter(string description, Func<QueryMessage, ISessionContext, CancellationToken, ValueTask<QueryDecision>> intercept)
    : InterceptorAdapter<Func<QueryMessage, ISessionContext, CancellationToken, ValueTask<QueryDecision>>>(description, intercept), IQueryInterceptor
{
    public ValueTask<QueryDecision> InterceptQueryAsync(QueryMessage query, ISessionContext session, CancellationToken cancellationToken) =>
        Intercept(query, session, cancellationToken);

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
}

/// <summary>A plugin's start-up function or class, seen as an <see cref="IStartupInterceptor"/>.</summary>
internal sealed class StartupInterceptorAdapter(string description, Func<StartupRequest, ISessionContext, CancellationToken, ValueTask<StartupDecision>> intercept)
    : InterceptorAdapter<Func<StartupRequest, ISessionContext, CancellationToken, ValueTask<StartupDecision>>>(description, intercept), IStartupInterceptor
{
    public ValueTask<StartupDecision> InterceptStartupAsync(StartupRequest startup, ISessionContext session, CancellationToken cancellationToken) =>
        Intercept(startup, session, cancellationToken);
}

/// <summary>A plugin's response function or class, seen as an <see cref="IResponseInterceptor"/>; its kinds are read once.</summary>
internal sealed class ResponseInterceptorAdapter(string description, ResponseKinds kinds, Func<ResponseMessage, ISessionContext, CancellationToken, ValueTask> intercept)
    : InterceptorAdapter<Func<ResponseMessage, ISessionContext, CancellationToken, ValueTask>>(description, intercept), IResponseInterceptor
{
    public ResponseKinds Kinds { get; } = kinds;

    public ValueTask InterceptResponseAsync(ResponseMessage message, ISessionContext session, CancellationToken cancellationToken) =>
        Intercept(message, session, cancellationToken);
}
