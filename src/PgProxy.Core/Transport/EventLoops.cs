using System.Globalization;

namespace PgProxy.Core.Transport;

/// <summary>
/// The process's event loops, started at the first session: one per core by default. Most of a relay's cost is the
/// kernel's TCP work, done in the loops' own system calls, so it runs in parallel only across loops (measured on two
/// cores: two loops gave 5–18% more transactions per second than one, for about 1 µs more CPU per transaction, as
/// fewer events share each epoll_wait). Each session takes the next loop in turn for both of its sockets. <c>PGPROXY_EVENT_LOOPS</c> sets how many; 0 (or a
/// system without epoll) leaves sockets to .NET's own socket engine.
/// </summary>
internal static class EventLoops
{
    /// <summary>The environment variable that sets the number of loops.</summary>
    public const string CountVariable = "PGPROXY_EVENT_LOOPS";

    private static readonly Lazy<EventLoop[]> Loops = new(Start);
    private static int next = -1;

    /// <summary>The loop for a new session's sockets, or null when sockets use .NET's engine.</summary>
    /// <summary>
    /// Starts the loops now, at the proxy's start, rather than with its first session: a first session that came while
    /// descriptors ran out made epoll_create fail, and the failure, cached by the lazy value, failed every session after
    /// it, each left open and unanswered.
    /// </summary>
    /// <exception cref="IOException">An epoll instance could not be created (out of descriptors, say).</exception>
    public static int StartNow() => Loops.Value.Length;

    public static EventLoop? Next()
    {
        EventLoop[] loops = Loops.Value;
        return loops.Length == 0 ? null : loops[(uint)Interlocked.Increment(ref next) % (uint)loops.Length];
    }

    /// <summary>
    /// How many loops sessions use: <c>PGPROXY_EVENT_LOOPS</c> when set, else the default; 0 when sockets stay on
    /// .NET's engine. A value that is not a whole number from 0 to 256 is reported in <paramref name="problem"/>
    /// (and the default used).
    /// </summary>
    public static int ConfiguredCount(out string? problem)
    {
        problem = null;
        int count = Environment.ProcessorCount;
        string? configured = Environment.GetEnvironmentVariable(CountVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            if (int.TryParse(configured, NumberStyles.None, CultureInfo.InvariantCulture, out int parsed) && parsed <= 256)
            {
                count = parsed;
            }
            else
            {
                problem = $"{CountVariable}=\"{configured}\": expected the number of event loops, 0 to 256 (0: .NET's socket engine)";
            }
        }

        return LinuxSockets.IsSupported ? count : 0;
    }

    private static EventLoop[] Start()
    {
        int count = ConfiguredCount(out _);
        if (count == 0)
        {
            return [];
        }

        var loops = new EventLoop[count];
        for (int i = 0; i < count; i++)
        {
            loops[i] = EventLoop.Start($"PgProxy loop {i}");
        }

        return loops;
    }
}
