using PgProxy.Abstractions;

namespace PgProxy.Core.Interception;

/// <summary>An interceptor with the name it is logged under (<c>plugin.function</c>) and the keys its entry sets.</summary>
public sealed record NamedInterceptor<T>(string Name, T Interceptor)
    where T : class
{
    /// <summary>The entry's <c>on-error</c>; null for <c>settings.plugin-failure</c>, or else the kind's default.</summary>
    public InterceptorFailurePolicy? OnError { get; init; }

    /// <summary>The entry's <c>timeout</c>; null for <c>settings.plugin-timeout</c>.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>The name in <c>plugins</c> of the plugin its code comes from; null for an interceptor given by code.</summary>
    public string? Plugin { get; init; }
}

/// <summary>An interceptor as the runner calls it: every default resolved, and its counters.</summary>
internal sealed record InterceptorEntry<T>(string Name, T Interceptor, TimeSpan Timeout, InterceptorFailurePolicy OnError, string? Plugin = null)
    where T : class
{
    /// <summary>Calls, failures, timeouts and time, counted by the runner for every session of the snapshot.</summary>
    public InterceptorCounters Counters { get; } = new();
}

/// <summary>What happens to a message when its interceptor throws or runs past its timeout.</summary>
public enum InterceptorFailurePolicy
{
    /// <summary>
    /// The client receives an error (XX000) instead of the query being run; a start-up is refused; a DataRow is withheld.
    /// The default of response interceptors: a broken masking plugin never lets through what it was meant to hide.
    /// </summary>
    Refuse,

    /// <summary>The message goes on unchanged, and the failure is logged. The default of query and start-up interceptors.</summary>
    PassThrough,
}

/// <summary>
/// The interceptors of one instance, resolved once and frozen into arrays: nothing is looked up per message.
/// </summary>
public sealed class InstanceInterceptors
{
    public InstanceInterceptors(
        IEnumerable<NamedInterceptor<IQueryInterceptor>> queries,
        IEnumerable<NamedInterceptor<IStartupInterceptor>> connects,
        TimeSpan timeout,
        InterceptorFailurePolicy? failurePolicy)
        : this(queries, connects, [], timeout, failurePolicy)
    {
    }

    /// <param name="queries">The query interceptors, in order.</param>
    /// <param name="connects">The start-up interceptors, in order.</param>
    /// <param name="responses">The response interceptors, in order.</param>
    /// <param name="timeout"><c>settings.plugin-timeout</c>: the timeout of an entry that sets none.</param>
    /// <param name="failurePolicy"><c>settings.plugin-failure</c>: the on-error of an entry that sets none; null leaves each kind its default.</param>
    public InstanceInterceptors(
        IEnumerable<NamedInterceptor<IQueryInterceptor>> queries,
        IEnumerable<NamedInterceptor<IStartupInterceptor>> connects,
        IEnumerable<NamedInterceptor<IResponseInterceptor>> responses,
        TimeSpan timeout,
        InterceptorFailurePolicy? failurePolicy)
    {
        Queries = Resolve(queries, timeout, failurePolicy ?? InterceptorKinds.Query.DefaultOnError);
        Connects = Resolve(connects, timeout, failurePolicy ?? InterceptorKinds.Connect.DefaultOnError);
        Responses = Resolve(responses, timeout, failurePolicy ?? InterceptorKinds.Response.DefaultOnError);
        ResponseKinds = Responses.Aggregate(ResponseKinds.None, (kinds, r) => kinds | r.Interceptor.Kinds);
    }

    public static InstanceInterceptors None { get; } = new([], [], TimeSpan.FromSeconds(5), null);

    internal InterceptorEntry<IQueryInterceptor>[] Queries { get; }

    internal InterceptorEntry<IStartupInterceptor>[] Connects { get; }

    internal InterceptorEntry<IResponseInterceptor>[] Responses { get; }

    /// <summary>Every message kind some response interceptor asked for: only these are decoded.</summary>
    public ResponseKinds ResponseKinds { get; }

    public bool InterceptsQueries => Queries.Length > 0;

    /// <summary>
    /// <c>limits.max-intercepted-size</c>: a Query or Parse whose body is larger is not decoded for the query
    /// interceptors. Default 16 MB.
    /// </summary>
    public long MaxInterceptedSize { get; init; } = InstanceLimitsDefaults.MaxInterceptedSize;

    /// <summary>
    /// What becomes of a Query or Parse over <see cref="MaxInterceptedSize"/>: refused when some query interceptor's
    /// on-error is refuse (it must not be bypassed by a large message), else relayed as it came.
    /// </summary>
    internal InterceptorFailurePolicy OversizedPolicy =>
        Array.Exists(Queries, q => q.OnError == InterceptorFailurePolicy.Refuse) ? InterceptorFailurePolicy.Refuse : InterceptorFailurePolicy.PassThrough;

    public bool InterceptsResponses => ResponseKinds != ResponseKinds.None;

    /// <summary>What the entries of plugin <paramref name="plugin"/> have counted, all kinds together.</summary>
    internal InterceptorCounts CountsOf(string plugin)
    {
        InterceptorCounts counts = default;
        counts = Sum(Queries, plugin, counts);
        counts = Sum(Connects, plugin, counts);
        return Sum(Responses, plugin, counts);

        static InterceptorCounts Sum<T>(InterceptorEntry<T>[] entries, string plugin, InterceptorCounts counts)
            where T : class
        {
            foreach (InterceptorEntry<T> entry in entries)
            {
                if (string.Equals(entry.Plugin, plugin, StringComparison.Ordinal))
                {
                    counts = counts.Add(entry.Counters.Read());
                }
            }

            return counts;
        }
    }

    /// <summary>An entry's own keys first, then the settings, then the kind's default.</summary>
    private static InterceptorEntry<T>[] Resolve<T>(IEnumerable<NamedInterceptor<T>> entries, TimeSpan timeout, InterceptorFailurePolicy onError)
        where T : class =>
        [.. entries.Select(entry => new InterceptorEntry<T>(entry.Name, entry.Interceptor, entry.Timeout ?? timeout, entry.OnError ?? onError, entry.Plugin))];
}

/// <summary>The defaults of <c>limits</c> the interceptors need, in one place with <see cref="Configuration.InstanceLimits"/>.</summary>
internal static class InstanceLimitsDefaults
{
    public const long MaxInterceptedSize = 16L << 20;
}
