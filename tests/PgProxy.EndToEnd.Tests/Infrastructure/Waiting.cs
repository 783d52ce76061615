namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>
/// Waiting, with a deadline, on state that announces nothing when it changes (pg_stat_activity, a server coming back,
/// the proxy's session count, a cache entry expiring): the condition is checked again every few milliseconds. What
/// announces its changes (a process's output, a log) is waited on through <see cref="Changes"/>, without polling.
/// </summary>
public static class Waiting
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(25);

    /// <summary>
    /// Evaluates <paramref name="condition"/> until it returns true. An exception from the condition
    /// counts as "not yet" (a server still starting refuses connections) and is kept as the inner
    /// exception of the <see cref="TimeoutException"/> that names <paramref name="what"/> when
    /// <paramref name="deadline"/> passes.
    /// </summary>
    public static async Task WaitUntilAsync(
        Func<Task<bool>> condition,
        TimeSpan deadline,
        string what,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var giveUpAt = DateTime.UtcNow + deadline;
        Exception? lastFailure = null;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                lastFailure = exception;
            }

            if (DateTime.UtcNow >= giveUpAt)
            {
                throw new TimeoutException($"Gave up after {deadline} waiting until {what}.", lastFailure);
            }

            // Poll interval between two checks of the condition; the deadline above bounds the wait.
            await Task.Delay(PollInterval, cancellationToken);
        }
    }
}
