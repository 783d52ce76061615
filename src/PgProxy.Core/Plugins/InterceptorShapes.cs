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
        if (!TryRead(method, out Type r, out Type[] p))
        {
            return null;
        }

        if (r == typeof(ValueTask) && Matches(p, typeof(ResponseMessage), typeof(ISessionContext), typeof(CancellationToken)))
        {
            return method.CreateDelegate<Func<ResponseMessage, ISessionContext, CancellationToken, ValueTask>>();
        }

        return FromAction<ResponseMessage, ValueTask>(method, r, p, default);
    }

    /// <summary>The query interceptor delegate for <paramref name="method"/> (public static), or null when its signature is not one of <see cref="QuerySignatures"/>.</summary>
    public static Func<QueryMessage, ISessionContext, CancellationToken, ValueTask<QueryDecision>>? ForQuery(MethodInfo method) =>
        !TryRead(method, out Type r, out Type[] p) ? null
            : FromDecision<QueryMessage, QueryDecision>(method, r, p)
                ?? (ForText(method, r, p) is { } rewrite ? QueryInterceptorAdapter.FromText(rewrite) : null);

    /// <summary>The start-up interceptor delegate for <paramref name="method"/>, or null when its signature is not one of <see cref="StartupSignatures"/>.</summary>
    public static Func<StartupRequest, ISessionContext, CancellationToken, ValueTask<StartupDecision>>? ForStartup(MethodInfo method) =>
        !TryRead(method, out Type r, out Type[] p) ? null
            : FromDecision<StartupRequest, StartupDecision>(method, r, p)
                ?? FromAction<StartupRequest, ValueTask<StartupDecision>>(method, r, p, new(StartupDecision.Continue));

    /// <summary>
    /// <c>TDecision F(TMessage message, ISessionContext context)</c> or its asynchronous form with a CancellationToken,
    /// <c>ValueTask&lt;TDecision&gt;</c>.
    /// </summary>
    private static Func<TMessage, ISessionContext, CancellationToken, ValueTask<TDecision>>? FromDecision<TMessage, TDecision>(MethodInfo method, Type r, Type[] p)
    {
        if (r == typeof(TDecision) && Matches(p, typeof(TMessage), typeof(ISessionContext)))
        {
            var decide = method.CreateDelegate<Func<TMessage, ISessionContext, TDecision>>();
            return (message, session, _) => new(decide(message, session));
        }

        return r == typeof(ValueTask<TDecision>) && Matches(p, typeof(TMessage), typeof(ISessionContext), typeof(CancellationToken))
            ? method.CreateDelegate<Func<TMessage, ISessionContext, CancellationToken, ValueTask<TDecision>>>()
            : null;
    }

    /// <summary>Return type and parameter types of a method that can be a plugin function; false for a generic one.</summary>
    private static bool TryRead(MethodInfo method, out Type returnType, out Type[] parameterTypes)
    {
        returnType = method.ReturnType;
        parameterTypes = method.IsGenericMethodDefinition ? [] : ParameterTypes(method);
        return !method.IsGenericMethodDefinition;
    }

    /// <summary><c>void F(TMessage message, ISessionContext context)</c>: it changes the message in place, then <paramref name="completed"/>.</summary>
    private static Func<TMessage, ISessionContext, CancellationToken, TResult>? FromAction<TMessage, TResult>(MethodInfo method, Type r, Type[] p, TResult completed)
    {
        if (r != typeof(void) || !Matches(p, typeof(TMessage), typeof(ISessionContext)))
        {
            return null;
        }

        var change = method.CreateDelegate<Action<TMessage, ISessionContext>>();
        return (message, session, _) =>
        {
            change(message, session);
            return completed;
        };
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
