using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;
using PgProxy.Core.Masks;
using PgProxy.Core.Relay;
using PgProxy.Core.Rules;
using PgProxy.Core.Server;
using PgProxy.Core.Sessions;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;

namespace PgProxy.Benchmarks;

/// <summary>
/// The masked DataRow path of issue 13 (a 1M-row SELECT through a mask on one text column), in steady state: a
/// server-to-client <see cref="ForwardingPump"/> with a session's diversion and mask handlers reads a pipe and writes
/// to a sink that counts bytes. The rows are those of bench/compare.sh's bulk table (id, md5 text a, md5 text b), the
/// mask is on <c>a</c>; one operation is 1,000 rows written in one flush, in 64 KiB pipe segments as a socket read
/// delivers them (so some rows straddle two segments). <c>none</c> is the same pump without handlers (the
/// everything-off instance). Divide by 1,000 for ns and bytes per row.
/// </summary>
[MemoryDiagnoser]
public class MaskedRowBenchmarks : IDisposable
{
    /// <summary>Rows forwarded per operation.</summary>
    public const int RowsPerOperation = 1000;

    private const uint BulkOid = 16384;

    private Pipe pipe = null!;
    private CountingSink sink = null!;
    private Task<PumpStop> running = null!;
    private byte[] rows = null!;

    /// <summary>The mask's <c>with</c> on column a; <c>none</c>: no mask and no handlers.</summary>
    [Params("none", "{keep-last: 4}", "hash", "email", "{regex: '[0-9]', replace: '#'}")]
    public string With { get; set; } = "none";

    [GlobalSetup]
    public void Setup()
    {
        rows = BulkRows(RowsPerOperation);
        pipe = new Pipe(new PipeOptions(
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: 1024 * 1024,
            resumeWriterThreshold: 512 * 1024,
            minimumSegmentSize: 64 * 1024,
            useSynchronizationContext: false));
        sink = new CountingSink();
        var state = new ServerProtocolState(trackStatements: With != "none");
        IFrameHandler[]? handlers = null;
        if (With != "none")
        {
            string yaml = "instances:\n  - listen: {name: bench, host: 127.0.0.1, port: 6432}\n    redirect: {name: db, host: 127.0.0.1, port: 5432}\n"
                + "    masks:\n      - {name: bulk-a, columns: [public.bulk.a], with: " + With + "}\n";
            ProxyConfig config = ConfigLoader.Parse(yaml, Path.GetTempPath(), "bench.yml");
            RuleSet ruleSet = RuleSet.Build(config.Instances[0].Rules, config.Instances[0].Masks, config.Settings);
            var relation = new CatalogRelation(BulkOid, "public", "bulk", 'r');
            relation.Columns[2] = new ColumnVerdict("a", ruleSet.Masks.Masks[0], null);
            ruleSet.Masks.Store("bench", new MaskCatalog([relation]));
            var context = new SessionContext(1, "bench", null, [new("user", "bench"), new("database", "bench")], state, NullLogger.Instance);
            handlers = [new ServerResponseHandler(state, context), new MaskHandler(new LiveRules { Current = ruleSet }, context, state)];

            // The simple query whose rows these are, as the client pump would have recorded it.
            state.Statements!.OnFrontendMessage((byte)FrontendMessageCode.Query, default);
        }

        var pump = new ForwardingPump(pipe.Reader, sink, state, PumpDirection.ServerToClient, maxMessageSize: 1024 * 1024, handlers);
        running = pump.RunAsync(CancellationToken.None);
        Write(RowDescription());

        // One operation checks that every row went through (masked rows keep their size: keep-last and constant-length masks).
        long before = sink.Bytes;
        Forward();
        if (sink.Bytes - before <= 0 || running.IsCompleted)
        {
            throw new InvalidOperationException($"the pump forwarded {sink.Bytes - before} bytes of {rows.Length}");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        pipe.Writer.Complete();
        PumpStop stop = running.GetAwaiter().GetResult();
        if (stop != PumpStop.SourceClosed)
        {
            throw new InvalidOperationException($"the pump stopped with {stop}");
        }
    }

    public void Dispose()
    {
        sink?.Dispose();
        GC.SuppressFinalize(this);
    }

    [Benchmark(Description = "1,000 bulk DataRows")]
    public long Forward()
    {
        long before = sink.Bytes;
        Write(rows);
        return sink.Bytes - before;
    }

    private void Write(byte[] bytes)
    {
        pipe.Writer.Write(bytes);
        ValueTask<FlushResult> flush = pipe.Writer.FlushAsync(CancellationToken.None);
        if (!flush.IsCompletedSuccessfully)
        {
            throw new InvalidOperationException("the pipe applied backpressure: the pump fell behind");
        }
    }

    /// <summary>The RowDescription of <c>SELECT * FROM bulk</c>: id int4, a text, b text, text format.</summary>
    private static byte[] RowDescription()
    {
        var writer = new ArrayBufferWriter<byte>();
        RowDescriptionMessage.Write(writer, PostgresEncodings.Utf8, [
            new FieldDescription("id", BulkOid, 1, 23, 4, -1, 0),
            new FieldDescription("a", BulkOid, 2, 25, -1, -1, 0),
            new FieldDescription("b", BulkOid, 3, 25, -1, -1, 0),
        ]);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>Rows like <c>SELECT g, md5(g::text), md5((g*7)::text) FROM generate_series(...) g</c>.</summary>
    private static byte[] BulkRows(int count)
    {
        var writer = new ArrayBufferWriter<byte>();
        for (int g = 1; g <= count; g++)
        {
            string id = (100_000 + g).ToString(CultureInfo.InvariantCulture);
            byte[][] values = [Encoding.ASCII.GetBytes(id), Md5Hex(g), Md5Hex(g * 7)];
            int bodyLength = 2 + values.Sum(value => 4 + value.Length);
            Span<byte> header = writer.GetSpan(7);
            header[0] = (byte)BackendMessageCode.DataRow;
            BinaryPrimitives.WriteInt32BigEndian(header[1..], 4 + bodyLength);
            BinaryPrimitives.WriteInt16BigEndian(header[5..], (short)values.Length);
            writer.Advance(7);
            foreach (byte[] value in values)
            {
                BinaryPrimitives.WriteInt32BigEndian(writer.GetSpan(4), value.Length);
                writer.Advance(4);
                writer.Write(value);
            }
        }

        return writer.WrittenSpan.ToArray();
    }

#pragma warning disable CA5351 // The bulk table's values are md5 hex strings; nothing here is security.
    private static byte[] Md5Hex(int value) =>
        Encoding.ASCII.GetBytes(Convert.ToHexStringLower(MD5.HashData(Encoding.ASCII.GetBytes(value.ToString(CultureInfo.InvariantCulture)))));
#pragma warning restore CA5351
}
