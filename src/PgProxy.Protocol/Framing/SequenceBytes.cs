using System.Buffers;
using System.Text;

namespace PgProxy.Protocol.Framing;

/// <summary>Bytes of a sequence, wherever its segments happen to be cut.</summary>
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

    /// <summary>
    /// The text of a sequence in <paramref name="encoding"/>, decoded from its segments into the string itself. A large
    /// message arrives in many segments; a contiguous copy first (<c>ToArray</c>) costs the message's size again, and
    /// <see cref="EncodingExtensions.GetString(Encoding, in ReadOnlySequence{byte})"/> rents the text's size in
    /// buffers before building the string. This decodes twice instead: once to count the characters (into a small
    /// scratch buffer), once into the string.
    /// </summary>
    /// <exception cref="DecoderFallbackException">The bytes are not valid in the encoding (with an exception fallback).</exception>
    public static string Text(in ReadOnlySequence<byte> bytes, Encoding encoding)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        if (bytes.IsSingleSegment)
        {
            return encoding.GetString(bytes.FirstSpan);
        }

        char[] scratch = ArrayPool<char>.Shared.Rent(4096);
        long length = 0;
        try
        {
            Decoder counter = encoding.GetDecoder();
            foreach (ReadOnlyMemory<byte> segment in bytes)
            {
                length += Convert(counter, segment.Span, scratch, flush: false);
            }

            length += Convert(counter, [], scratch, flush: true);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(scratch);
        }

        return string.Create(checked((int)length), (bytes, encoding), static (text, state) =>
        {
            Decoder decoder = state.encoding.GetDecoder();
            foreach (ReadOnlyMemory<byte> segment in state.bytes)
            {
                decoder.Convert(segment.Span, text, flush: false, out _, out int written, out _);
                text = text[written..];
            }

            decoder.Convert([], text, flush: true, out _, out _, out _);
        });
    }

    // Characters a segment decodes to, written to scratch and dropped; the decoder keeps a character cut between segments.
    private static long Convert(Decoder decoder, ReadOnlySpan<byte> bytes, char[] scratch, bool flush)
    {
        long produced = 0;
        bool completed;
        do
        {
            decoder.Convert(bytes, scratch, flush, out int used, out int written, out completed);
            produced += written;
            bytes = bytes[used..];
        }
        while (!completed);
        return produced;
    }
}
