using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace PgProxy.Sql;

/// <summary>
/// Runs work that recurses once per nesting level of a query on one dedicated thread with a large stack.
/// </summary>
/// <remarks>
/// Both sides of libpg_query recurse over the tree: the C code that fingerprints, normalizes and serializes it, and
/// the generated C# that reads the serialized tree back, where one level of <c>Node</c> takes kilobytes of stack
/// (its merge method has a local for each of its two hundred kinds). A query of a few kilobytes
/// (<c>SELECT 1+1+1…</c>, subqueries nested a few hundred deep) is enough to overflow a 1.5 MB thread-pool stack,
/// which kills the process: no exception can be caught. Such queries are rare and are sent here, where the stack is
/// large enough for the deepest tree PostgreSQL's grammar accepts; ordinary queries stay on the caller's thread.
/// One thread also means deep queries are parsed one at a time, so many of them at once cannot multiply the memory
/// they need.
/// </remarks>
internal static class DeepStack
{
    /// <summary>Stack reserved for the thread: address space, committed only as deep queries touch it.</summary>
    public const int StackBytes = 256 << 20;

    private static readonly BlockingCollection<WorkItem> Queue = new();
    private static readonly Lazy<Thread> Worker = new(StartWorker);

    [ThreadStatic]
    private static bool onWorker;

    /// <summary>Runs <paramref name="work"/> on the deep-stack thread and waits for it; exceptions reach the caller as thrown.</summary>
    public static TResult Run<TState, TResult>(TState state, Func<TState, TResult> work)
    {
        if (onWorker)
        {
            return work(state);
        }

        _ = Worker.Value;
        var item = new WorkItem<TState, TResult>(state, work);
        Queue.Add(item);
        item.Done.Wait();
        item.Done.Dispose();
        item.Error?.Throw();
        return item.Result!;
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the deep-stack thread without blocking the caller: the task completes (on the
    /// thread pool, never on the deep-stack thread) with its result or its exception.
    /// </summary>
    public static Task<TResult> RunAsync<TState, TResult>(TState state, Func<TState, TResult> work)
    {
        _ = Worker.Value;
        var item = new AsyncWorkItem<TState, TResult>(state, work);
        Queue.Add(item);
        return item.Completion.Task;
    }

    private static Thread StartWorker()
    {
        var thread = new Thread(RunQueue, StackBytes) { IsBackground = true, Name = "PgProxy.Sql deep parser" };
        thread.Start();
        return thread;
    }

    private static void RunQueue()
    {
        onWorker = true;
        foreach (WorkItem item in Queue.GetConsumingEnumerable())
        {
            item.Execute();
        }
    }

    private abstract class WorkItem
    {
        public abstract void Execute();
    }

    private sealed class AsyncWorkItem<TState, TResult>(TState state, Func<TState, TResult> work) : WorkItem
    {
        public TaskCompletionSource<TResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override void Execute()
        {
            try
            {
                Completion.SetResult(work(state));
            }
#pragma warning disable CA1031 // Every failure is handed back to the awaiting caller.
            catch (Exception exception)
#pragma warning restore CA1031
            {
                Completion.SetException(exception);
            }
        }
    }

    private sealed class WorkItem<TState, TResult>(TState state, Func<TState, TResult> work) : WorkItem
    {
        public ManualResetEventSlim Done { get; } = new();

        public ExceptionDispatchInfo? Error { get; private set; }

        public TResult? Result { get; private set; }

        public override void Execute()
        {
            try
            {
                Result = work(state);
            }
#pragma warning disable CA1031 // Every failure is handed back to the waiting caller, which rethrows it.
            catch (Exception exception)
#pragma warning restore CA1031
            {
                Error = ExceptionDispatchInfo.Capture(exception);
            }
            finally
            {
                Done.Set();
            }
        }
    }
}
