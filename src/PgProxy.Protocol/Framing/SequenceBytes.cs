using System.Buffers;

namespace PgProxy.Protocol.Framing;

/// <summary>Single bytes of a sequence, wherever its segments happen to be cut.</summary>
public static class SequenceBytes
{
    /// <summary>
    /// The first byte of a non-empty sequence. A sequence may start with an empty segment, whose
    /// <see cref="ReadOnlySequence{T}.FirstSpan"/> is empty, so <c>FirstSpan[0]</c> alone could throw on bytes a peer
    /// sent correctly.
    /// </summary>
    /// <exception cref="ArgumentException">The sequence is empty.</exception>
    public static byte First(in ReadOnlySequence<byte> sequence)
    {
        ReadOnlySpan<byte> first = sequence.FirstSpan;
        return first.Length > 0 ? first[0] : FirstOfLaterSegment(sequence);
    }

    private static byte FirstOfLaterSegment(in ReadOnlySequence<byte> sequence)
    {
        foreach (ReadOnlyMemory<byte> segment in sequence)
        {
            if (!segment.IsEmpty)
            {
                return segment.Span[0];
            }
        }

        throw new ArgumentException("the sequence is empty", nameof(sequence));
    }
}
