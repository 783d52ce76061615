namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>The one sanctioned way for a test to wait: on a condition, with a deadline.</summary>
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
