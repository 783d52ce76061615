using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using PgProxy.Core.Server;
using PgProxy.Core.Statistics;

namespace PgProxy.Benchmarks;

/// <summary>
/// What per-query statistics add to one pgbench -S -M prepared transaction: the statement timer observing the four
/// frontend messages (Bind, Describe, Execute, Sync) and the four backend ones (BindComplete, DataRow, CommandComplete,
/// ReadyForQuery), and recording the statement in the store. The statement was parsed once in setup, as pgbench does
/// per connection. Allocated bytes per operation should be 0.
/// </summary>
[MemoryDiagnoser]
public class StatementTimerBenchmarks
{
    private (byte Code, byte[] Body)[] frontend = [];
    private (byte Code, byte[] Body)[] backend = [];
    private StatementTimer timer = null!;

    [GlobalSetup]
    public void Setup()
    {
        var statistics = new QueryStatistics(5000);
        timer = new StatementTimer(statistics, null, null, new QueryShapes(), null, new ServerProtocolState(), new StatementSource(1, "proxy", "postgres", "postgres", "pgbench", "127.0.0.1:5000"));
        var parse = new ArrayBufferWriter<byte>();
        parse.Write("P0_1\0"u8);
        parse.Write(Encoding.UTF8.GetBytes(Wire.PgbenchSelect + "\0"));
        parse.Write("\0\0"u8);
        timer.OnFrontendMessage((byte)'P', new ReadOnlySequence<byte>(parse.WrittenMemory));
        frontend = Split(Wire.FrontendTransaction(4242));
        backend = Split(Wire.BackendTransaction(0));
    }

    [Benchmark]
    public void OneTransaction()
    {
        foreach ((byte code, byte[] body) in frontend)
        {
            timer.OnFrontendMessage(code, new ReadOnlySequence<byte>(body));
        }

        foreach ((byte code, byte[] body) in backend)
        {
            timer.OnBackendMessage(code, new ReadOnlySequence<byte>(body));
        }
    }

    private static (byte, byte[])[] Split(byte[] frames)
    {
        var result = new List<(byte, byte[])>();
        for (int offset = 0; offset < frames.Length;)
        {
            int length = (frames[offset + 1] << 24) | (frames[offset + 2] << 16) | (frames[offset + 3] << 8) | frames[offset + 4];
            result.Add((frames[offset], frames.AsSpan(offset + 5, length - 4).ToArray()));
            offset += 1 + length;
        }

        return [.. result];
    }
}
