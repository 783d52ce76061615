using System.Buffers;
using System.Text;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Protocol.Framing;

/// <summary>The steps every message reader takes over a body, none of which throws or reads past the body.</summary>
internal static class BodyReading
{
    /// <summary>Reads a NUL-terminated String; false when it is unterminated or not valid in <paramref name="encoding"/>.</summary>
    public static bool TryReadCString(ref SequenceReader<byte> reader, Encoding encoding, out string value)
    {
        try
        {
            return QueryMessages.TryReadCString(ref reader, encoding, out value);
        }
        catch (DecoderFallbackException)
        {
            // A strict client encoding refuses the bytes: for a Try reader that is malformed input, not a crash.
            value = string.Empty;
            return false;
        }
    }

    /// <summary>Takes the next <paramref name="length"/> bytes as a slice of the body, not a copy.</summary>
    public static bool TryReadSlice(ref SequenceReader<byte> reader, int length, out ReadOnlySequence<byte> slice)
    {
        if (length < 0 || reader.Remaining < length)
        {
            slice = default;
            return false;
        }

        slice = reader.UnreadSequence.Slice(0, length);
        reader.Advance(length);
        return true;
    }
}
