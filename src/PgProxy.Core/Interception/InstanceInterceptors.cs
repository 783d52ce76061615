using PgProxy.Abstractions;

namespace PgProxy.Core.Interception;

/// <summary>An interceptor with the name it is logged under (<c>plugin.function</c>).</summary>
public sealed record NamedInterceptor<T>(string Name, T Interceptor)
    where T : class;

/// <summary>What happens to a message when its interceptor throws or runs past its timeout.</summary>
public enum InterceptorFailurePolicy
{
    /// <summary>The client receives an error (XX000) instead of the query being run; a start-up is refused. The default: a broken plugin never lets through what it was meant to change.</summary>
    Refuse,

    /// <summary>The message goes on unchanged, and the failure is logged.</summary>
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
        InterceptorFailurePolicy failurePolicy)
        : this(queries, connects, [], timeout, failurePolicy)
    {
    }

    public InstanceInterceptors(
        IEnumerable<NamedInterceptor<IQueryInterceptor>> queries,
        IEnumerable<NamedInterceptor<IStartupInterceptor>> connects,
        IEnumerable<NamedInterceptor<IResponseInterceptor>> responses,
        TimeSpan timeout,
        InterceptorFailurePolicy failurePolicy)
    {
        Queries = [.. queries];
        Connects = [.. connects];
        Responses = [.. responses];
        ResponseKinds = Responses.Aggregate(ResponseKinds.None, (kinds, r) => kinds | r.Interceptor.Kinds);
        Timeout = timeout;
        FailurePolicy = failurePolicy;
    }

    public static InstanceInterceptors None { get; } = new([], [], TimeSpan.FromSeconds(5), InterceptorFailurePolicy.Refuse);

    public NamedInterceptor<IQueryInterceptor>[] Queries { get; }

    public NamedInterceptor<IStartupInterceptor>[] Connects { get; }

    public NamedInterceptor<IResponseInterceptor>[] Responses { get; }

    /// <summary>Every message kind some response interceptor asked for: only these are decoded.</summary>
    public ResponseKinds ResponseKinds { get; }

    /// <summary>How long one interceptor call may take, metadata queries included.</summary>
    public TimeSpan Timeout { get; }

    public InterceptorFailurePolicy FailurePolicy { get; }

    /// <summary>What to log and tell the client for a failed call: a timeout says how long it waited.</summary>
    internal Exception FailureReason(Exception exception) =>
        exception is OperationCanceledException or TimeoutException
            ? new TimeoutException($"timed out after {Timeout.TotalSeconds:0.###} s", exception)
            : exception;

    /// <summary>The message of the XX000 a failed interceptor leads to under the refuse policy.</summary>
    internal static string FailureMessage(string interceptor, Exception reason) => $"PgProxy interceptor \"{interceptor}\" failed: {reason.Message}";

    public bool InterceptsQueries => Queries.Length > 0;

    public bool InterceptsResponses => ResponseKinds != ResponseKinds.None;

    /// <summary>True when DataRows are intercepted, so the columns of every extended-protocol Execute must be tracked.</summary>
    public bool TracksResultColumns => (ResponseKinds & ResponseKinds.DataRow) != 0;
}
