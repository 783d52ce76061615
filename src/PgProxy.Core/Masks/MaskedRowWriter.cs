using System.Buffers.Binary;
using System.Text;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Masks;

/// <summary>
/// Rewrites one DataRow with its masked values, in one pass over its bytes: the runs of values no mask covers (and
/// every NULL) are copied as they are, each masked value is written from its bytes by <see cref="Mask.TryWriteMasked"/>,
/// and the frame's length is set once the row is written. Nothing is allocated per row.
/// </summary>
internal static class MaskedRowWriter
{
    /// <summary>
    /// Writes the DataRow <paramref name="frame"/> (header included) with the values of the columns <paramref name="masks"/>
    /// names masked (null: not masked) into <paramref name="output"/>, from its start. False, with nothing to send, when
    /// the row is malformed or has not one value per column: such a row cannot be masked column by column.
    /// </summary>
    public static bool TryWrite(ReadOnlySpan<byte> frame, Mask?[] masks, Encoding encoding, MaskedRowBuffer output)
    {
        ReadOnlySpan<byte> body = frame[MessageHeader.Size..];
        if (!DataRowMessage.TryCheck(body, out int columnCount) || columnCount != masks.Length)
        {
            return false;
        }

        output.Reset();
        output.WriteByte((byte)BackendMessageCode.DataRow);
        output.WriteInt32BigEndian(0);

        // Bytes of the body from copyFrom on are not written yet: the column count, then unmasked values, copied in runs.
        int copyFrom = 0;
        int position = WireFormat.Int16Size;
        for (int column = 0; column < columnCount; column++)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(body[position..]);
            int valueStart = position + WireFormat.Int32Size;
            int valueEnd = length == WireFormat.NullValueLength ? valueStart : valueStart + length;
            if (masks[column] is { } mask && length != WireFormat.NullValueLength)
            {
                output.Write(body[copyFrom..position]);
                WriteValue(body[valueStart..valueEnd], mask, encoding, output);
                copyFrom = valueEnd;
            }

            position = valueEnd;
        }

        output.Write(body[copyFrom..]);
        output.SetInt32BigEndian(1, output.Length - 1);
        return true;
    }

    /// <summary>A masked value with its length; NULL when the mask makes it so, or when its bytes are not text (nothing of them leaves).</summary>
    private static void WriteValue(ReadOnlySpan<byte> value, Mask mask, Encoding encoding, MaskedRowBuffer output)
    {
        int lengthAt = output.Length;
        output.WriteInt32BigEndian(0);
        bool written;
        try
        {
            written = mask.TryWriteMasked(value, encoding, output);
        }
        catch (DecoderFallbackException)
        {
            written = false;
        }

        if (!written)
        {
            output.Truncate(lengthAt);
            output.WriteInt32BigEndian(WireFormat.NullValueLength);
            return;
        }

        output.SetInt32BigEndian(lengthAt, output.Length - lengthAt - WireFormat.Int32Size);
    }
}
