using System.Buffers;
using System.Text;
using PgProxy.Core.Statistics;

namespace PgProxy.Core.Tests.Statistics;

/// <summary>The pure parts of per-query statistics: row counts from command tags, percentiles, eviction.</summary>
public sealed class StatisticsUnitTests
{
    [Theory]
    [InlineData("SELECT 5", 5)]
    [InlineData("INSERT 0 17", 17)]
    [InlineData("UPDATE 3", 3)]
    [InlineData("COPY 1000000", 1000000)]
    [InlineData("CREATE TABLE", 0)]
    [InlineData("BEGIN", 0)]
    public void Rows_come_from_the_number_at_the_end_of_the_command_tag(string tag, long rows) =>
        Assert.Equal(rows, StatementTimer.RowsOf(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(tag + "\0"))));

    [Fact]
    public void Percentiles_are_within_a_bucket_of_the_true_value()
    {
        var histogram = new LatencyHistogram();
        for (int i = 1; i <= 1000; i++)
        {
            histogram.Record(i); // 1 µs .. 1 ms, uniform
        }

        Assert.InRange(histogram.Percentile(0.50), 500, 500 * 1.19);
        Assert.InRange(histogram.Percentile(0.99), 990, 990 * 1.19);
        Assert.Equal(1000, histogram.Count);
        histogram.Clear();
        Assert.Equal(0, histogram.Percentile(0.5));
    }

    [Fact]
    public void A_full_store_evicts_the_least_recently_seen_entries_and_counts_them()
    {
        var statistics = new QueryStatistics(capacity: 10);
        var shape = new QueryShape(1, "0000000000000001", "SELECT $1", "SELECT 1");
        DateTimeOffset start = DateTimeOffset.UnixEpoch;
        for (int i = 0; i < 10; i++)
        {
            statistics.Record(new QueryKey("proxy", "db", "u", (ulong)i), shape, 10, 1, failed: false, start.AddSeconds(i));
        }

        statistics.Record(new QueryKey("proxy", "db", "u", 0), shape, 10, 1, failed: false, start.AddSeconds(20)); // seen again: now the newest
        statistics.Record(new QueryKey("proxy", "db", "u", 99), shape, 10, 1, failed: false, start.AddSeconds(21));

        Assert.True(statistics.Evictions >= 1);
        Assert.True(statistics.Count <= 10);
        List<ulong> kept = [.. statistics.Snapshot().Select(pair => pair.Key.Fingerprint)];
        Assert.Contains(0UL, kept);
        Assert.Contains(99UL, kept);
        Assert.DoesNotContain(1UL, kept); // the oldest seen
    }
}
