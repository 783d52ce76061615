namespace PgProxy.Core.Statistics;

/// <summary>
/// A small fixed histogram of durations for percentiles: 4 buckets per doubling from 1 µs to about 2.3 hours (a
/// bucket's upper bound is 2^(i/4) µs), so a percentile is known within 19% whatever the scale, in 132 counters.
/// Not thread-safe: its owner locks.
/// </summary>
internal sealed class LatencyHistogram
{
    private const int BucketsPerDoubling = 4;
    private const int BucketCount = 33 * BucketsPerDoubling;
    private readonly long[] counts = new long[BucketCount];
    private long total;

    public long Count => total;

    public void Record(double microseconds)
    {
        int bucket = microseconds <= 1 ? 0 : (int)Math.Ceiling(Math.Log2(microseconds) * BucketsPerDoubling);
        counts[Math.Clamp(bucket, 0, BucketCount - 1)]++;
        total++;
    }

    /// <summary>The upper bound of the bucket holding the <paramref name="quantile"/> (0..1), in µs; 0 when empty.</summary>
    public double Percentile(double quantile)
    {
        if (total == 0)
        {
            return 0;
        }

        long rank = Math.Max(1, (long)Math.Ceiling(quantile * total));
        long seen = 0;
        for (int i = 0; i < BucketCount; i++)
        {
            seen += counts[i];
            if (seen >= rank)
            {
                return UpperBound(i);
            }
        }

        return UpperBound(BucketCount - 1);
    }

    public void Clear()
    {
        Array.Clear(counts);
        total = 0;
    }

    private static double UpperBound(int bucket) => Math.Pow(2, (double)bucket / BucketsPerDoubling);
}
