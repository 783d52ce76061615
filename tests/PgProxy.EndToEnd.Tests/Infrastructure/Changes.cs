namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>
/// Something that announces each change of its own (a process's output, a log): a test waits until a condition over
/// it holds, re-checked at each announcement, with a deadline. No polling: for state that announces nothing
/// (pg_stat_activity, say) <see cref="Waiting"/> polls instead.
/// </summary>
public sealed class Changes
{
    private readonly object gate = new();
    private TaskCompletionSource next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Wakes every waiter to check its condition again.</summary>
    public void Announce()
    {
        TaskCompletionSource announced;
        lock (gate)
        {
            announced = next;
            next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        announced.TrySetResult();
    }

    /// <summary>Returns once <paramref name="condition"/> holds; a <see cref="TimeoutException"/> naming <paramref name="what"/> after <paramref name="deadline"/>.</summary>
    public async Task WaitUntilAsync(Func<bool> condition, TimeSpan deadline, string what)
    {
        using var timeout = new CancellationTokenSource(deadline);
        while (true)
        {
            // Taken before the check: a change after it completes this task, so none is missed.
            Task changed;
            lock (gate)
            {
                changed = next.Task;
            }

            if (condition())
            {
                return;
            }

            try
            {
                await changed.WaitAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                throw new TimeoutException($"Gave up after {deadline} waiting until {what}.");
            }
        }
    }
}
