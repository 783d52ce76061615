using PgProxy.Abstractions;
using PgProxy.Core.Interception;

namespace PgProxy.EndToEnd.Tests.Interception;

/// <summary>Interceptors written for the tests, as a plugin author would write them.</summary>
internal sealed class DelegateQueryInterceptor(Func<QueryMessage, ISessionContext, CancellationToken, ValueTask<QueryDecision>> intercept) : IQueryInterceptor
{
    public List<QueryMessage> Seen { get; } = [];

    public ValueTask<QueryDecision> InterceptQueryAsync(QueryMessage query, ISessionContext session, CancellationToken cancellationToken)
    {
        lock (Seen)
        {
            Seen.Add(query);
        }

        return intercept(query, session, cancellationToken);
    }
}

internal sealed class DelegateStartupInterceptor(Func<StartupRequest, ISessionContext, StartupDecision> intercept) : IStartupInterceptor
{
    public ValueTask<StartupDecision> InterceptStartupAsync(StartupRequest startup, ISessionContext session, CancellationToken cancellationToken) =>
        ValueTask.FromResult(intercept(startup, session));
}

internal static class Interceptors
{
    /// <summary>As a configuration without <c>plugin-failure</c>: a failing query interceptor passes the query on.</summary>
    public static InstanceInterceptors Queries(params IQueryInterceptor[] interceptors) =>
        Queries(null, TimeSpan.FromSeconds(5), interceptors);

    public static InstanceInterceptors Queries(InterceptorFailurePolicy? policy, TimeSpan timeout, params IQueryInterceptor[] interceptors) =>
        new(interceptors.Select((i, n) => new NamedInterceptor<IQueryInterceptor>($"test.query{n}", i)), [], timeout, policy);

    public static InstanceInterceptors Connects(params IStartupInterceptor[] interceptors) =>
        new([], interceptors.Select((i, n) => new NamedInterceptor<IStartupInterceptor>($"test.connect{n}", i)), TimeSpan.FromSeconds(5), null);

    /// <summary>Rewrites queries with a plain text replacement; leaves others alone.</summary>
    public static DelegateQueryInterceptor Replace(string from, string to) =>
        new((query, _, _) => ValueTask.FromResult(query.Text.Contains(from, StringComparison.Ordinal)
            ? QueryDecision.Rewrite(query.Text.Replace(from, to, StringComparison.Ordinal))
            : QueryDecision.Continue));

    /// <summary>Refuses queries that contain <paramref name="marker"/>.</summary>
    public static DelegateQueryInterceptor RefuseContaining(string marker, string sqlState = "42501", string message = "refused by policy") =>
        new((query, _, _) => ValueTask.FromResult(query.Text.Contains(marker, StringComparison.Ordinal)
            ? QueryDecision.Refuse(sqlState, message)
            : QueryDecision.Continue));
}

/// <summary>A response interceptor from a lambda, counting the messages it saw.</summary>
internal sealed class DelegateResponseInterceptor(ResponseKinds kinds, Action<ResponseMessage> intercept) : IResponseInterceptor
{
    private int seen;

    public ResponseKinds Kinds => kinds;

    public int Seen => Volatile.Read(ref seen);

    /// <summary>The columns of the last DataRow seen.</summary>
    public IReadOnlyList<ResponseColumn>? LastRowColumns { get; private set; }

    public ValueTask InterceptResponseAsync(ResponseMessage message, ISessionContext session, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref seen);
        if (message.Kind == ResponseKinds.DataRow)
        {
            LastRowColumns = message.Columns;
        }

        intercept(message);
        return ValueTask.CompletedTask;
    }
}

internal static class ResponseInterceptors
{
    public static InstanceInterceptors Of(params IResponseInterceptor[] interceptors) =>
        new([], [], interceptors.Select((i, n) => new NamedInterceptor<IResponseInterceptor>($"test.response{n}", i)), TimeSpan.FromSeconds(5), null);

    /// <summary>Masks the text value of every column named email, as plugins/examples/mask_email.cs does.</summary>
    public static DelegateResponseInterceptor MaskEmail() => new(ResponseKinds.DataRow, message =>
    {
        for (int i = 0; i < message.Columns.Count; i++)
        {
            if (message.Columns[i].Name == "email" && message.Columns[i].IsText && message.GetValue(i) is not null)
            {
                message.SetText(i, "***");
            }
        }
    });
}
