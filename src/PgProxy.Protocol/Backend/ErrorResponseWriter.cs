using System.Buffers;
using System.Text;

namespace PgProxy.Protocol.Backend;

/// <summary>Writes the ErrorResponse messages PgProxy raises itself: severity ('S' and 'V'), SQLSTATE ('C') and message ('M').</summary>
public static class ErrorResponseWriter
{
    /// <summary>Builds a whole ErrorResponse message.</summary>
    public static byte[] Build(ErrorSeverity severity, string sqlState, string message)
    {
        ArgumentNullException.ThrowIfNull(message);
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
        ArgumentNullException.ThrowIfNull(sqlState);
        ArgumentNullException.ThrowIfNull(message);
        string severityText = severity == ErrorSeverity.Fatal ? "FATAL" : "ERROR";
        ErrorNoticeMessage.Write(writer, BackendMessageCode.ErrorResponse, Encoding.UTF8,
        [
            new(ErrorFieldCodes.Severity, severityText),
            new(ErrorFieldCodes.SeverityNonLocalized, severityText),
            new(ErrorFieldCodes.SqlState, sqlState),
            new(ErrorFieldCodes.Message, message),
        ]);
    }
}
