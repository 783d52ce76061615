namespace PgProxy.Core.Statistics;

/// <summary>
/// One instance's totals since start (or the last reset): transactions, statements, their time, errors by SQLSTATE
/// class, and the bytes of the sessions that ended (open sessions add theirs when asked). Updated once per statement,
/// transaction or session, under its own lock.
/// </summary>
internal sealed class InstanceStatistics
{
    private readonly Lock gate = new();
    private readonly LatencyHistogram histogram = new();
    private readonly Dictionary<string, long> errorsByClass = new(StringComparer.Ordinal);
    private long transactions;
    private long queries;
    private double totalMicroseconds;
    private long bytesFromClients;
    private long bytesToClients;
    private long sessions;

    public void StatementEnded(double microseconds, string? sqlState)
    {
        lock (gate)
        {
            queries++;
            totalMicroseconds += microseconds;
            histogram.Record(microseconds);
            if (sqlState is { Length: >= 2 })
            {
                string errorClass = sqlState[..2];
                errorsByClass[errorClass] = errorsByClass.GetValueOrDefault(errorClass) + 1;
            }
        }
    }

    /// <summary>A ReadyForQuery back to idle: a transaction (explicit, or the implicit one of a statement) ended.</summary>
    public void TransactionEnded() => Interlocked.Increment(ref transactions);

    public void SessionEnded(long fromClient, long toClient)
    {
        Interlocked.Increment(ref sessions);
        Interlocked.Add(ref bytesFromClients, fromClient);
        Interlocked.Add(ref bytesToClients, toClient);
    }

    public InstanceStatisticsSnapshot Snapshot()
    {
        lock (gate)
        {
            return new InstanceStatisticsSnapshot(
                Interlocked.Read(ref sessions),
                Interlocked.Read(ref transactions),
                queries,
                Interlocked.Read(ref bytesFromClients),
                Interlocked.Read(ref bytesToClients),
                new Dictionary<string, long>(errorsByClass, StringComparer.Ordinal),
                queries == 0 ? 0 : totalMicroseconds / queries,
                histogram.Percentile(0.50),
                histogram.Percentile(0.99));
        }
    }
}

/// <summary>An instance's totals at one moment; times in microseconds, bytes of ended sessions only.</summary>
internal sealed record InstanceStatisticsSnapshot(
    long SessionsEnded,
    long Transactions,
    long Queries,
    long BytesFromClients,
    long BytesToClients,
    IReadOnlyDictionary<string, long> ErrorsByClass,
    double MeanMicroseconds,
    double P50Microseconds,
    double P99Microseconds);
