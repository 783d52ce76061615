using System.Buffers;
using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
using PgProxy.Core.Sessions;

namespace PgProxy.Benchmarks;

/// <summary>Which way the forwarding benchmark's pump runs (the engine's own enum is internal).</summary>
public enum Side
{
    ClientToServer,
    ServerToClient,
}

/// <summary>
/// A <see cref="ForwardingPump"/> in steady state: one long-lived pump reads a long-lived <see cref="Pipe"/> and writes
/// to a sink that only counts bytes. One operation writes 1,000 pgbench -S frames into the pipe, in flushes of
/// <see cref="FramesPerFlush"/> frames (one flush is one read for the pump, so one batch it writes), and returns
/// when the pump has forwarded them all. The pipe's reader continuation runs inline, so the pump does its work on
/// the benchmark's thread, inside the flush: the figure is the pump's own cost (scan, state, write, advance)
/// without a thread-pool hop or a socket. Allocated bytes per operation should be 0.
/// </summary>
[MemoryDiagnoser]
public class ForwardingBenchmarks : IDisposable
{
    /// <summary>Frames forwarded per operation.</summary>
    public const int FramesPerOperation = 1000;

    private Pipe pipe = null!;
    private CountingSink sink = null!;
    private ForwardingPump pump = null!;
    private Task<PumpStop> running = null!;
    private byte[] frames = null!;
    private int[] frameEnds = null!;

    /// <summary>Client to server: Bind, Describe, Execute, Sync. Server to client: BindComplete, DataRow, CommandComplete, ReadyForQuery.</summary>
    [Params(Side.ClientToServer, Side.ServerToClient)]
    public Side Direction { get; set; }

    /// <summary>Frames per flush, so per read of the pump: 1 is the worst case, 1,000 a bulk stream.</summary>
    [Params(1, 8, 1000)]
    public int FramesPerFlush { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        bool frontend = Direction == Side.ClientToServer;
        frames = Wire.OneSide(FramesPerOperation / 4, frontend);
        frameEnds = FrameEnds(frames);
        pipe = new Pipe(new PipeOptions(
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: 1024 * 1024,
            resumeWriterThreshold: 512 * 1024,
            useSynchronizationContext: false));
        sink = new CountingSink();
        pump = new ForwardingPump(pipe.Reader, sink, new ServerProtocolState(), frontend ? PumpDirection.ClientToServer : PumpDirection.ServerToClient, maxMessageSize: 1024 * 1024);
        running = pump.RunAsync(CancellationToken.None);

        // One operation now checks that every byte went through before anything is measured.
        Forward();
        if (sink.Bytes != frames.Length || pump.BytesForwarded != frames.Length || running.IsCompleted)
        {
            throw new InvalidOperationException($"the pump forwarded {sink.Bytes} of {frames.Length} bytes");
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

    [Benchmark(Description = "Forward 1,000 frames")]
    public long Forward()
    {
        long before = sink.Bytes;
        int start = 0;
        for (int frame = FramesPerFlush - 1; ; frame += FramesPerFlush)
        {
            int end = frameEnds[Math.Min(frame, frameEnds.Length - 1)];
            pipe.Writer.Write(frames.AsSpan(start, end - start));
            ValueTask<FlushResult> flush = pipe.Writer.FlushAsync(CancellationToken.None);
            if (!flush.IsCompletedSuccessfully)
            {
                throw new InvalidOperationException("the pipe applied backpressure: the pump fell behind");
            }

            start = end;
            if (end == frames.Length)
            {
                break;
            }
        }

        return sink.Bytes - before;
    }

    private static int[] FrameEnds(byte[] bytes)
    {
        var ends = new List<int>();
        int offset = 0;
        while (offset < bytes.Length)
        {
            offset += 1 + System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(offset + 1));
            ends.Add(offset);
        }

        if (ends.Count != FramesPerOperation)
        {
            throw new InvalidOperationException($"expected {FramesPerOperation} frames, built {ends.Count}");
        }

        return [.. ends];
    }
}
