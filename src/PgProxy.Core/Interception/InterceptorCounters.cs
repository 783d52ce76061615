using System.Diagnostics;

namespace PgProxy.Core.Interception;

/// <summary>
/// The counters of one interceptor entry, for SHOW PLUGINS: built once with the entry, shared by every session of its
/// snapshot, and updated with <see cref="Interlocked"/> only, so a call costs two timestamps and three atomic adds and
/// never an allocation (response interceptors are called per DataRow).
/// </summary>
internal sealed class InterceptorCounters
{
    private long calls;
    private long failures;
    private long timeouts;
    private long elapsedTicks;

    /// <summary>A call begun at <paramref name="startedTimestamp"/> (<see cref="Stopwatch.GetTimestamp()"/>) has ended, however it ended.</summary>
    public void Called(long startedTimestamp)
    {
        Interlocked.Add(ref elapsedTicks, Stopwatch.GetTimestamp() - startedTimestamp);
        Interlocked.Increment(ref calls);
    }

    /// <summary>A call threw (anything but a refusal or a timeout).</summary>
    public void Failed() => Interlocked.Increment(ref failures);

    /// <summary>A call ran past its timeout.</summary>
    public void TimedOut() => Interlocked.Increment(ref timeouts);

    /// <summary>The counts now; read field by field, so a call ending meanwhile may show in one and not yet in another.</summary>
    public InterceptorCounts Read() => new(
        Interlocked.Read(ref calls),
        Interlocked.Read(ref failures),
        Interlocked.Read(ref timeouts),
        Interlocked.Read(ref elapsedTicks));
}

/// <summary>What one or more interceptor entries have counted.</summary>
/// <param name="Calls">Calls made, whatever they came to (a refusal, a failure, a timeout, or going on).</param>
/// <param name="Failures">Calls that threw, refusals and timeouts apart.</param>
/// <param name="Timeouts">Calls that ran past their timeout.</param>
/// <param name="ElapsedTicks">The time of every call together, in <see cref="Stopwatch"/> ticks.</param>
internal readonly record struct InterceptorCounts(long Calls, long Failures, long Timeouts, long ElapsedTicks)
{
    /// <summary>The mean time of a call, in microseconds; 0 before the first call.</summary>
    public double MeanMicroseconds => Calls == 0 ? 0 : ElapsedTicks * 1_000_000.0 / Stopwatch.Frequency / Calls;

    /// <summary>These counts and <paramref name="other"/> together (one plugin's entries, on every instance).</summary>
    public InterceptorCounts Add(InterceptorCounts other) => new(
        Calls + other.Calls,
        Failures + other.Failures,
        Timeouts + other.Timeouts,
        ElapsedTicks + other.ElapsedTicks);
}
