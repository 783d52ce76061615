using System.Threading.Tasks.Sources;

namespace PgProxy.Core.Transport;

/// <summary>
/// One direction of a socket waiting for its next readiness event from the event loop: a reusable awaitable, so a
/// wait allocates nothing. The loop completes it inline, so the awaiting code runs on the loop's thread as the
/// event's direct consequence, with no hop to another thread.
/// </summary>
internal sealed class ReadinessWaiter : IValueTaskSource
{
    private static readonly Action<object?, CancellationToken> CancelledCallback =
        static (state, token) => ((ReadinessWaiter)state!).TryFail(new OperationCanceledException(token));

    private ManualResetValueTaskSourceCore<bool> core; // RunContinuationsAsynchronously stays false: run on the loop
    private CancellationTokenRegistration cancellation;
    private int armed;
    private int closed;

    /// <summary>
    /// Waits until <paramref name="events"/> moves past <paramref name="observed"/> (the loop counts each readiness
    /// event), the token is cancelled, or the socket is closed. Returns at once when the count has already moved.
    /// </summary>
    public ValueTask WaitAsync(ref int events, int observed, CancellationToken cancellationToken)
    {
        core.Reset();
        Volatile.Write(ref armed, 1);

        // Armed first, checked second: an event between the caller's check and the arming is not lost.
        if (Volatile.Read(ref events) != observed || Volatile.Read(ref closed) != 0)
        {
            if (Interlocked.Exchange(ref armed, 0) == 1)
            {
                ObjectDisposedException.ThrowIf(Volatile.Read(ref closed) != 0, this);
                return default;
            }

            // The loop (or a close) took the wait and completes it.
        }
        else if (cancellationToken.CanBeCanceled)
        {
            cancellation = cancellationToken.UnsafeRegister(CancelledCallback, this);
        }

        return new ValueTask(this, core.Version);
    }

    /// <summary>The loop saw an event: wake the waiter, if any.</summary>
    public void Signal()
    {
        if (Interlocked.Exchange(ref armed, 0) == 1)
        {
            core.SetResult(true);
        }
    }

    /// <summary>The socket is closed: this wait and every later one fail.</summary>
    public void Close()
    {
        Volatile.Write(ref closed, 1);
        TryFail(new ObjectDisposedException(nameof(LoopSocketStream)));
    }

    private void TryFail(Exception exception)
    {
        if (Interlocked.Exchange(ref armed, 0) == 1)
        {
            core.SetException(exception);
        }
    }

    void IValueTaskSource.GetResult(short token)
    {
        // Unregistered before the next wait arms, so a late cancellation cannot fail a wait it was not meant for.
        cancellation.Dispose();
        cancellation = default;
        core.GetResult(token);
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        core.OnCompleted(continuation, state, token, flags);
}
