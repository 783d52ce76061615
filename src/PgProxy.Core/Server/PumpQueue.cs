namespace PgProxy.Core.Server;

/// <summary>
/// A queue between a session's two pumps: the frontend enqueues what it sent, the backend pairs responses with it. A
/// plain queue under an uncontended lock: ConcurrentQueue's TryPeek retires the segment it looks at, so peeking at
/// every response would allocate a new segment every few requests.
/// </summary>
internal sealed class PumpQueue<T>
{
    private readonly Queue<T> items = new();
    private readonly Lock gate = new();

    public void Enqueue(T item)
    {
        lock (gate)
        {
            items.Enqueue(item);
        }
    }

    public bool TryPeek(out T item)
    {
        lock (gate)
        {
            return items.TryPeek(out item!);
        }
    }

    public bool TryDequeue(out T item)
    {
        lock (gate)
        {
            return items.TryDequeue(out item!);
        }
    }
}
