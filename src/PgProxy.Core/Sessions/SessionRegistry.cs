using System.Collections.Concurrent;

namespace PgProxy.Core.Sessions;

/// <summary>The sessions open now, across instances, so a shutdown (and the admin console) can reach each of them.</summary>
internal sealed class SessionRegistry
{
    private readonly ConcurrentDictionary<long, ProxySession> sessions = new();
    private long lastId;
    private TaskCompletionSource? emptied;

    public int Count => sessions.Count;

    public long NextId() => Interlocked.Increment(ref lastId);

    public void Add(ProxySession session) => sessions[session.Id] = session;

    public void Remove(ProxySession session)
    {
        sessions.TryRemove(session.Id, out _);
        if (sessions.IsEmpty)
        {
            Volatile.Read(ref emptied)?.TrySetResult();
        }
    }

    public IReadOnlyCollection<ProxySession> Snapshot() => sessions.Values.ToList();

    /// <summary>The open session with this id, for the console's KILL and CANCEL; null when there is none.</summary>
    public ProxySession? Find(long id) => sessions.GetValueOrDefault(id);

    /// <summary>Completes when no session is left.</summary>
    public Task WhenEmptyAsync(CancellationToken cancellationToken)
    {
        var completion = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref emptied, completion);
        if (sessions.IsEmpty)
        {
            completion.TrySetResult();
        }

        return completion.Task.WaitAsync(cancellationToken);
    }
}
