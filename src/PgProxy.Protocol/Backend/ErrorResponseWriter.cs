using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;

namespace PgProxy.Protocol.Backend;

/// <summary>Writes ErrorResponse messages: severity ('S' and 'V'), SQLSTATE ('C') and message ('M').</summary>
public static class ErrorResponseWriter
{
    /// <summary>Builds a whole ErrorResponse message.</summary>
    public static byte[] Build(ErrorSeverity severity, string sqlState, string message)
    {
        var writer = new ArrayBufferWriter<byte>(64 + message.Length * 3);
        Write(writer, severity, sqlState, message);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>Builds a whole ErrorResponse message from a proxy error.</summary>
    public static byte[] Build(ErrorSeverity severity, ProtocolError error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return Build(severity, error.SqlState, error.Message);
    }

    /// <summary>Writes one ErrorResponse; the length is computed first and checked after writing.</summary>
    public static void Write(IBufferWriter<byte> writer, ErrorSeverity severity, string sqlState, string message)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(sqlState);
        ArgumentNullException.ThrowIfNull(message);
        string severityText = severity == ErrorSeverity.Fatal ? "FATAL" : "ERROR";
        int length = 4
            + FieldSize(severityText)
            + FieldSize(severityText)
            + FieldSize(sqlState)
            + FieldSize(message)
            + 1;
        Span<byte> span = writer.GetSpan(1 + length);
        span[0] = (byte)BackendMessageCode.ErrorResponse;
        BinaryPrimitives.WriteInt32BigEndian(span[1..], length);
        int offset = 5;
        offset += WriteField(span[offset..], (byte)'S', severityText);
        offset += WriteField(span[offset..], (byte)'V', severityText);
        offset += WriteField(span[offset..], (byte)'C', sqlState);
        offset += WriteField(span[offset..], (byte)'M', message);
        span[offset++] = 0;
        if (offset != 1 + length)
        {
            throw new UnreachableException($"ErrorResponse announced {length} bytes but wrote {offset - 1}");
        }

        writer.Advance(offset);
    }

    private static int FieldSize(string value) => 1 + Encoding.UTF8.GetByteCount(value) + 1;

    private static int WriteField(Span<byte> destination, byte type, string value)
    {
        destination[0] = type;
        int written = Encoding.UTF8.GetBytes(value, destination[1..]);
        destination[1 + written] = 0;
        return written + 2;
    }
}
