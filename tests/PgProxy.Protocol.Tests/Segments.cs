using System.Buffers;

namespace PgProxy.Protocol.Tests;

/// <summary>Builds multi-segment sequences, as a socket delivers bytes in arbitrary pieces.</summary>
internal static class Segments
{
    public static ReadOnlySequence<byte> Split(byte[] bytes, params int[] cuts)
    {
        var bounds = new List<int> { 0 };
        bounds.AddRange(cuts.Where(c => c > 0 && c < bytes.Length).Order());
        bounds.Add(bytes.Length);
        Segment? first = null;
        Segment? last = null;
        for (int i = 0; i + 1 < bounds.Count; i++)
        {
            var memory = new ReadOnlyMemory<byte>(bytes, bounds[i], bounds[i + 1] - bounds[i]);
            if (first is null)
            {
                first = last = new Segment(memory, 0);
            }
            else
            {
                last = last!.Append(memory);
            }
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    /// <summary><paramref name="bytes"/> behind an empty first segment, which a sequence may legally start with.</summary>
    public static ReadOnlySequence<byte> AfterEmptySegment(byte[] bytes)
    {
        var first = new Segment(ReadOnlyMemory<byte>.Empty, 0);
        Segment last = first.Append(bytes);
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
