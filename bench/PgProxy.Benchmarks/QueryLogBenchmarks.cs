using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Statistics;

namespace PgProxy.Benchmarks;

/// <summary>
/// The query log writer's cost per line (json): one pgbench -S statement's record formatted into the batch, as the
/// writer's task does for every statement with the query log on. The batch is emptied every 1,000 lines.
/// </summary>
[MemoryDiagnoser]
#pragma warning disable CA1001 // the log is disposed in GlobalCleanup, as BenchmarkDotNet runs it
public class QueryLogBenchmarks
#pragma warning restore CA1001
{
    private QueryLog log = null!;
    private QueryLogRecord record = null!;
    private int lines;

    [GlobalSetup]
    public void Setup()
    {
        log = new QueryLog(NullLoggerFactory.Instance);
        QueryShape shape = new QueryShapes().Of(System.Text.Encoding.UTF8.GetBytes(Wire.PgbenchSelect), System.Text.Encoding.UTF8)[0];
        record = new QueryLogRecord(
            DateTimeOffset.UtcNow, 42, "proxy", "postgres", "postgres", "pgbench", "127.0.0.1:51234", shape, 123.4, 1, null, null, null,
            new QueryLogConfig { File = "queries.log", Format = QueryLogFormat.Json });
    }

    [GlobalCleanup]
    public void Cleanup() => log.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [Benchmark]
    public void OneJsonLine()
    {
        log.AppendLine(record);
        if (++lines == 1000)
        {
            lines = 0;
            log.ResetBatch();
        }
    }
}
