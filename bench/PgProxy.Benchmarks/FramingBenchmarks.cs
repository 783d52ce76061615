using System.Buffers;
using BenchmarkDotNet.Attributes;
using PgProxy.Protocol.Framing;

namespace PgProxy.Benchmarks;

/// <summary>
/// <see cref="FrameReader.TryReadFrame"/> over one receive buffer holding a batch of 64 messages: eight pgbench -S
/// prepared transactions, client and server halves (Bind, Describe, Execute, Sync, BindComplete, DataRow,
/// CommandComplete, ReadyForQuery). One operation frames the whole batch.
/// </summary>
[MemoryDiagnoser]
public class FramingBenchmarks
{
    /// <summary>Messages per batch: 8 transactions of 8 messages.</summary>
    public const int MessagesPerBatch = 64;

    /// <summary>Segment size of the multi-segment case: odd, so headers straddle boundaries.</summary>
    public const int SmallSegment = 61;

    private ReadOnlySequence<byte> singleSegment;
    private ReadOnlySequence<byte> multiSegment;

    [GlobalSetup]
    public void Setup()
    {
        byte[] batch = Wire.MixedBatch(MessagesPerBatch / 8);
        singleSegment = new ReadOnlySequence<byte>(batch);
        multiSegment = Wire.Segmented(batch, SmallSegment);
        if (FrameAll(singleSegment) != MessagesPerBatch || FrameAll(multiSegment) != MessagesPerBatch)
        {
            throw new InvalidOperationException("the batch does not frame into 64 messages");
        }
    }

    [Benchmark(Baseline = true, Description = "Frame 64 messages, one segment")]
    public int SingleSegment() => FrameAll(singleSegment);

    [Benchmark(Description = "Frame 64 messages, 61-byte segments")]
    public int MultiSegment() => FrameAll(multiSegment);

    private static int FrameAll(ReadOnlySequence<byte> buffer)
    {
        int frames = 0;
        long bodyBytes = 0;
        while (FrameReader.TryReadFrame(ref buffer, int.MaxValue, out Frame frame) == FrameReadStatus.Complete)
        {
            frames++;
            bodyBytes += frame.Body.Length;
        }

        return bodyBytes > 0 ? frames : -1;
    }
}
