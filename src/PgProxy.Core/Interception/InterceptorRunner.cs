using System.Diagnostics;
using PgProxy.Abstractions;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Interception;

/// <summary>What a response interceptor's call came to: go on, or refuse (a row withheld, the remaining interceptors skipped).</summary>
internal readonly record struct ResponseDecision(string? RefusalSqlState, string? RefusalMessage)
{
    public static ResponseDecision Continue => default;

    public bool IsRefusal => RefusalSqlState is not null;

    public static ResponseDecision Refuse(string sqlState, string message) => new(sqlState, message);
}

/// <summary>
/// What sets one kind of interceptor apart for the runner: how it is called, what going on and refusing are, its
/// default failure policy, and how a failure's outcome is logged. Everything else (timeout, cancellation, failures,
/// <see cref="RefusedException"/>) is the same for every kind.
/// </summary>
internal sealed class InterceptorKind<TInterceptor, TMessage, TDecision>(
    InterceptorFailurePolicy defaultOnError,
    Func<TInterceptor, TMessage, ISessionContext, CancellationToken, ValueTask<TDecision>> invoke,
    TDecision proceed,
    Func<string, string, TDecision> refuse,
    string passOutcome,
    Func<TMessage, string> refuseOutcome)
    where TInterceptor : class
{
    /// <summary>The <c>on-error</c> of an entry that sets none when <c>settings.plugin-failure</c> is absent.</summary>
    public InterceptorFailurePolicy DefaultOnError { get; } = defaultOnError;

    public ValueTask<TDecision> InvokeAsync(TInterceptor interceptor, TMessage message, ISessionContext session, CancellationToken cancellationToken) =>
        invoke(interceptor, message, session, cancellationToken);

    /// <summary>The decision that lets the message go on unchanged.</summary>
    public TDecision Continue { get; } = proceed;

    public TDecision Refuse(string sqlState, string message) => refuse(sqlState, message);

    /// <summary>What the log says happens to <paramref name="message"/> after a failure under <paramref name="policy"/>.</summary>
    public string Outcome(TMessage message, InterceptorFailurePolicy policy) =>
        policy == InterceptorFailurePolicy.PassThrough ? passOutcome : refuseOutcome(message);
}

/// <summary>The three kinds of interceptor.</summary>
internal static class InterceptorKinds
{
    /// <summary>Queries fail open by default: a broken rewriter should not stop the application.</summary>
    public static InterceptorKind<IQueryInterceptor, QueryMessage, QueryDecision> Query { get; } = new(
        InterceptorFailurePolicy.PassThrough, static (interceptor, query, session, token) => interceptor.InterceptQueryAsync(query, session, token),
        QueryDecision.Continue, QueryDecision.Refuse, "the query goes on unchanged", static _ => "the query is refused with XX000");

    /// <summary>Start-ups fail open by default, as queries do.</summary>
    public static InterceptorKind<IStartupInterceptor, StartupRequest, StartupDecision> Connect { get; } = new(
        InterceptorFailurePolicy.PassThrough, static (interceptor, startup, session, token) => interceptor.InterceptStartupAsync(startup, session, token),
        StartupDecision.Continue, StartupDecision.Refuse, "the start-up goes on unchanged", static _ => "the connection is refused with XX000");

    /// <summary>Responses fail closed by default: a masking plugin that breaks must not leak the rows it masks.</summary>
    public static InterceptorKind<IResponseInterceptor, ResponseMessage, ResponseDecision> Response { get; } = new(
        InterceptorFailurePolicy.Refuse, static (interceptor, message, session, token) => Completed(interceptor.InterceptResponseAsync(message, session, token)),
        ResponseDecision.Continue, ResponseDecision.Refuse, "the response goes on as it is",
        static message => message.Kind == ResponseKinds.DataRow ? "the row is withheld" : "the response goes on without the remaining interceptors");

    /// <summary>A response interceptor returns no decision: one that completes at once costs no allocation.</summary>
    private static ValueTask<ResponseDecision> Completed(ValueTask pending) =>
        pending.IsCompletedSuccessfully ? new(ResponseDecision.Continue) : AwaitCompleted(pending);

    private static async ValueTask<ResponseDecision> AwaitCompleted(ValueTask pending)
    {
        await pending.ConfigureAwait(false);
        return ResponseDecision.Continue;
    }
}

/// <summary>
/// Calls the interceptors of one kind for one session, one at a time: each call within its entry's timeout, with a
/// token that fires at that timeout; a <see cref="RefusedException"/>, thrown at once or from the task, becomes a
/// refusal; any other failure is logged and follows the entry's <c>on-error</c>.
/// One timeout source serves every call and is re-armed for each: an interceptor that answers at once costs neither a
/// new timer nor a task, which matters on the response path, called per DataRow. The source lives as long as the
/// session whose token it is linked to, and goes with it.
/// </summary>
internal sealed class InterceptorRunner<TInterceptor, TMessage, TDecision>(InterceptorKind<TInterceptor, TMessage, TDecision> kind, SessionContext context)
    where TInterceptor : class
{
    private CancellationTokenSource? timeout;
    private CancellationToken linkedTo;

    public ValueTask<TDecision> RunAsync(InterceptorEntry<TInterceptor> entry, TMessage message, CancellationToken cancellationToken)
    {
        // Every call is counted with its time, whatever it comes to, so SHOW PLUGINS' mean is the cost a session paid.
        long started = Stopwatch.GetTimestamp();
        CancellationToken token = Arm(entry.Timeout, cancellationToken);
        ValueTask<TDecision> pending;
        try
        {
            pending = kind.InvokeAsync(entry.Interceptor, message, context, token);
        }
        catch (Exception e) when (e is RefusedException || !cancellationToken.IsCancellationRequested)
        {
            Disarm();
            TDecision decided = Decide(entry, message, e);
            entry.Counters.Called(started);
            return new(decided);
        }
        catch
        {
            // The session ended during the call: the call still happened.
            entry.Counters.Called(started);
            throw;
        }

        if (pending.IsCompletedSuccessfully)
        {
            Disarm();
            entry.Counters.Called(started);
            return new(pending.Result);
        }

        return AwaitAsync(entry, message, pending, started, token, cancellationToken);
    }

    private async ValueTask<TDecision> AwaitAsync(
        InterceptorEntry<TInterceptor> entry, TMessage message, ValueTask<TDecision> pending, long started, CancellationToken token, CancellationToken cancellationToken)
    {
        try
        {
            // WaitAsync: an interceptor that ignores its token is not waited for past its timeout.
            return await pending.AsTask().WaitAsync(token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RefusedException || !cancellationToken.IsCancellationRequested)
        {
            return Decide(entry, message, e);
        }
        finally
        {
            Disarm();
            entry.Counters.Called(started);
        }
    }

    /// <summary>The one place a thrown refusal, and any other failure, become a decision.</summary>
    private TDecision Decide(InterceptorEntry<TInterceptor> entry, TMessage message, Exception exception)
    {
        if (exception is RefusedException refused)
        {
            return kind.Refuse(refused.SqlState, refused.Message);
        }

        Exception reason = exception is OperationCanceledException or TimeoutException
            ? new TimeoutException($"timed out after {entry.Timeout.TotalSeconds:0.###} s", exception)
            : exception;
        InterceptLog.Failed(context.Logger, context.SessionId, entry.Name, kind.Outcome(message, entry.OnError), reason);
        if (reason is TimeoutException)
        {
            entry.Counters.TimedOut();
            context.Metrics?.PluginTimedOut(context.InstanceName, entry.Name);
        }
        else
        {
            entry.Counters.Failed();
            context.Metrics?.PluginFailed(context.InstanceName, entry.Name);
        }

        return entry.OnError == InterceptorFailurePolicy.PassThrough
            ? kind.Continue
            : kind.Refuse(SqlStates.InternalError, $"PgProxy interceptor \"{entry.Name}\" failed: {reason.Message}");
    }

    private CancellationToken Arm(TimeSpan after, CancellationToken cancellationToken)
    {
        if (timeout is null || linkedTo != cancellationToken)
        {
            timeout?.Dispose();
            timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            linkedTo = cancellationToken;
        }

        timeout.CancelAfter(after);
        return timeout.Token;
    }

    private void Disarm()
    {
        if (timeout is not null && !timeout.TryReset())
        {
            // It fired: a source that was cancelled cannot be re-armed.
            timeout.Dispose();
            timeout = null;
        }
    }
}
