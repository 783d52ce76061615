using System.Buffers;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Tests;

/// <summary>Runs a writer into memory and takes what it wrote apart again, as the peer would.</summary>
internal static class Written
{
    public static byte[] Bytes(Action<IBufferWriter<byte>> write)
    {
        var output = new ArrayBufferWriter<byte>();
        write(output);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>The body of the one message <paramref name="write"/> wrote, after checking its type byte and length field.</summary>
    public static byte[] Body(BackendMessageCode code, Action<IBufferWriter<byte>> write)
    {
        byte[] bytes = Bytes(write);
        var buffer = new ReadOnlySequence<byte>(bytes);
        Assert.Equal(FrameReadStatus.Complete, FrameReader.TryReadFrame(ref buffer, int.MaxValue, out Frame frame));
        Assert.Equal((byte)code, frame.Code);
        Assert.True(buffer.IsEmpty, "the writer wrote more than one message");
        return frame.Body.ToArray();
    }

    /// <summary>Every proper prefix of <paramref name="body"/>: each a truncated message.</summary>
    public static IEnumerable<ReadOnlySequence<byte>> Prefixes(byte[] body)
    {
        for (int length = 0; length < body.Length; length++)
        {
            yield return new ReadOnlySequence<byte>(body, 0, length);
        }
    }

    /// <summary><paramref name="body"/> cut in two at every point, cut at every byte, and behind an empty segment.</summary>
    public static IEnumerable<ReadOnlySequence<byte>> Splits(byte[] body)
    {
        for (int cut = 1; cut < body.Length; cut++)
        {
            yield return Segments.Split(body, cut);
        }

        yield return Segments.Split(body, [.. Enumerable.Range(1, Math.Max(body.Length - 1, 0))]);
        yield return Segments.AfterEmptySegment(body);
    }
}
