using System.Reflection;
using PgProxy.Abstractions;
using TextFunction = System.Func<string, PgProxy.Abstractions.ISessionContext, System.Threading.CancellationToken, System.Threading.Tasks.ValueTask<string?>>;

namespace PgProxy.Core.Plugins;

/// <summary>
/// The method signatures a plugin function may have, and how each becomes an interceptor delegate. Every delegate is
/// built once with <see cref="MethodInfo.CreateDelegate(Type)"/>: no reflection when a query passes.
/// </summary>
internal static class InterceptorShapes
{
    public const string QuerySignatures = """
        string F(string query), string F(string query, ISessionContext context),
        Task<string> or ValueTask<string> F(string query[, ISessionContext context][, CancellationToken cancellationToken]),
        QueryDecision F(QueryMessage query, ISessionContext context),
        ValueTask<QueryDecision> F(QueryMessage query, ISessionContext context, CancellationToken cancellationToken)
        """;

    public const string StartupSignatures = """
        void F(StartupRequest startup, ISessionContext context),
        StartupDecision F(StartupRequest startup, ISessionContext context),
        ValueTask<StartupDecision> F(StartupRequest startup, ISessionContext context, CancellationToken cancellationToken)
        """;

    public const string ResponseSignatures = """
        void F(ResponseMessage message, ISessionContext context),
        ValueTask F(ResponseMessage message, ISessionContext context, CancellationToken cancellationToken)
        (with [ResponseKinds(...)] to name the message kinds; without it, every kind)
        """;

    /// <summary>The response interceptor delegate for <paramref name="method"/>, or null when its signature is not one of <see cref="ResponseSignatures"/>.</summary>
    public static Func<ResponseMessage, ISessionContext, CancellationToken, ValueTask>? ForResponse(MethodInfo method)
    {
        if (method.IsGenericMethodDefinition)
        {
            return null;
        }

        Type[] p = ParameterTypes(method);
        Type r = method.ReturnType;
        if (r == typeof(void) && Matches(p, typeof(ResponseMessage), typeof(ISessionContext)))
        {
            var change = method.CreateDelegate<Action<ResponseMessage, ISessionContext>>();
            return (message, session, _) =>
            {
                change(message, session);
                return default;
            };
        }

        if (r == typeof(ValueTask) && Matches(p, typeof(ResponseMessage), typeof(ISessionContext), typeof(CancellationToken)))
        {
            return method.CreateDelegate<Func<ResponseMessage, ISessionContext, CancellationToken, ValueTask>>();
        }

        return null;
    }

    /// <summary>The query interceptor delegate for <paramref name="method"/> (public static), or null when its signature is not one of <see cref="QuerySignatures"/>.</summary>
    public static Func<QueryMessage, ISessionContext, CancellationToken, ValueTask<QueryDecision>>? ForQuery(MethodInfo method)
    {
        if (method.IsGenericMethodDefinition)
        {
            return null;
        }

        Type[] p = ParameterTypes(method);
        Type r = method.ReturnType;
        if (r == typeof(QueryDecision) && Matches(p, typeof(QueryMessage), typeof(ISessionContext)))
        {
            var decide = method.CreateDelegate<Func<QueryMessage, ISessionContext, QueryDecision>>();
            return (query, session, _) => new(decide(query, session));
        }

        if (r == typeof(ValueTask<QueryDecision>) && Matches(p, typeof(QueryMessage), typeof(ISessionContext), typeof(CancellationToken)))
        {
            return method.CreateDelegate<Func<QueryMessage, ISessionContext, CancellationToken, ValueTask<QueryDecision>>>();
        }

        return ForText(method, r, p) is { } rewrite ? QueryInterceptorAdapter.FromText(rewrite) : null;
    }

    /// <summary>The start-up interceptor delegate for <paramref name="method"/>, or null when its signature is not one of <see cref="StartupSignatures"/>.</summary>
    public static Func<StartupRequest, ISessionContext, CancellationToken, ValueTask<StartupDecision>>? ForStartup(MethodInfo method)
    {
        if (method.IsGenericMethodDefinition)
        {
            return null;
        }

        Type[] p = ParameterTypes(method);
        Type r = method.ReturnType;
        if (r == typeof(void) && Matches(p, typeof(StartupRequest), typeof(ISessionContext)))
        {
            var change = method.CreateDelegate<Action<StartupRequest, ISessionContext>>();
            return (startup, session, _) =>
            {
                change(startup, session);
                return new(StartupDecision.Continue);
            };
        }

        if (r == typeof(StartupDecision) && Matches(p, typeof(StartupRequest), typeof(ISessionContext)))
        {
            var decide = method.CreateDelegate<Func<StartupRequest, ISessionContext, StartupDecision>>();
            return (startup, session, _) => new(decide(startup, session));
        }

        if (r == typeof(ValueTask<StartupDecision>) && Matches(p, typeof(StartupRequest), typeof(ISessionContext), typeof(CancellationToken)))
        {
            return method.CreateDelegate<Func<StartupRequest, ISessionContext, CancellationToken, ValueTask<StartupDecision>>>();
        }

        return null;
    }

    /// <summary>The seed's shape and its variants: a function of the query text that returns the new text.</summary>
    private static TextFunction? ForText(MethodInfo method, Type r, Type[] p)
    {
        if (p.Length == 0 || p[0] != typeof(string))
        {
            return null;
        }

        bool withContext = p.Length > 1 && p[1] == typeof(ISessionContext);
        bool withToken = p[^1] == typeof(CancellationToken);
        if (p.Length != 1 + (withContext ? 1 : 0) + (withToken ? 1 : 0))
        {
            return null;
        }

        if (r == typeof(string))
        {
            return (withContext, withToken) switch
            {
                (false, false) => Adapt(method.CreateDelegate<Func<string, string?>>()),
                (true, false) => Adapt(method.CreateDelegate<Func<string, ISessionContext, string?>>()),
                _ => null,
            };
        }

        if (r == typeof(Task<string>))
        {
            return (withContext, withToken) switch
            {
                (false, false) => Adapt(method.CreateDelegate<Func<string, Task<string?>>>()),
                (true, false) => Adapt(method.CreateDelegate<Func<string, ISessionContext, Task<string?>>>()),
                (false, true) => Adapt(method.CreateDelegate<Func<string, CancellationToken, Task<string?>>>()),
                (true, true) => Adapt(method.CreateDelegate<Func<string, ISessionContext, CancellationToken, Task<string?>>>()),
            };
        }

        if (r == typeof(ValueTask<string>))
        {
            return (withContext, withToken) switch
            {
                (false, false) => Adapt(method.CreateDelegate<Func<string, ValueTask<string?>>>()),
                (true, false) => Adapt(method.CreateDelegate<Func<string, ISessionContext, ValueTask<string?>>>()),
                (false, true) => Adapt(method.CreateDelegate<Func<string, CancellationToken, ValueTask<string?>>>()),
                (true, true) => method.CreateDelegate<Func<string, ISessionContext, CancellationToken, ValueTask<string?>>>(),
            };
        }

        return null;
    }

    private static TextFunction Adapt(Func<string, string?> f) => (q, _, _) => new(f(q));

    private static TextFunction Adapt(Func<string, ISessionContext, string?> f) => (q, s, _) => new(f(q, s));

    private static TextFunction Adapt(Func<string, Task<string?>> f) => (q, _, _) => FromTask(f(q));

    private static TextFunction Adapt(Func<string, ISessionContext, Task<string?>> f) => (q, s, _) => FromTask(f(q, s));

    private static TextFunction Adapt(Func<string, CancellationToken, Task<string?>> f) => (q, _, c) => FromTask(f(q, c));

    private static TextFunction Adapt(Func<string, ISessionContext, CancellationToken, Task<string?>> f) => (q, s, c) => FromTask(f(q, s, c));

    private static TextFunction Adapt(Func<string, ValueTask<string?>> f) => (q, _, _) => f(q);

    private static TextFunction Adapt(Func<string, ISessionContext, ValueTask<string?>> f) => (q, s, _) => f(q, s);

    private static TextFunction Adapt(Func<string, CancellationToken, ValueTask<string?>> f) => (q, _, c) => f(q, c);

    /// <summary>A null task, like a null text, leaves the query alone.</summary>
    private static ValueTask<string?> FromTask(Task<string?>? task) => task is null ? default : new(task);

    private static Type[] ParameterTypes(MethodInfo method) => [.. method.GetParameters().Select(parameter => parameter.ParameterType)];

    private static bool Matches(Type[] actual, params Type[] expected) => actual.AsSpan().SequenceEqual(expected);
}
