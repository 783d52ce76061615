using System.Buffers;
using System.Text;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Admin;

/// <summary>How console results and errors go on the wire, through the protocol library's writers.</summary>
internal static class ConsoleWire
{
    /// <summary>The console speaks UTF-8 whatever the client asked for: it reports client_encoding UTF8.</summary>
    public static Encoding Encoding => Encoding.UTF8;

    /// <summary>
    /// A result as the simple protocol answers a query (RowDescription, rows, CommandComplete), or as an Execute does
    /// (<paramref name="withDescription"/> false: the Describe before it sent the description).
    /// </summary>
    public static void WriteResult(IBufferWriter<byte> output, ConsoleResult result, bool withDescription)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Columns is not { } columns)
        {
            CommandCompleteMessage.Write(output, Encoding, result.Tag!);
        }
        else if (withDescription)
        {
            ResultSetWriter.WriteText(output, Encoding, columns, result.Rows);
        }
        else
        {
            ResultSetWriter.WriteTextRows(output, Encoding, columns.Count, result.Rows);
        }
    }

    /// <summary>The answer to a Describe: the columns of the command in the formats the Bind asked for, or NoData.</summary>
    public static void WriteDescription(IBufferWriter<byte> output, ConsoleCommandInfo? command, ReadOnlySpan<short> resultFormats)
    {
        if (command?.Columns is { } columns)
        {
            ResultSetWriter.WriteTextDescription(output, Encoding, columns, resultFormats);
        }
        else
        {
            output.Write(PregeneratedMessages.NoData.Span);
        }
    }

    /// <summary>An ErrorResponse with severity, SQLSTATE, message and, when given, a hint.</summary>
    public static void WriteError(IBufferWriter<byte> output, ErrorSeverity severity, string sqlState, string message, string? hint = null)
    {
        string severityText = severity == ErrorSeverity.Fatal ? "FATAL" : "ERROR";
        List<KeyValuePair<char, string>> fields =
        [
            new(ErrorFieldCodes.Severity, severityText),
            new(ErrorFieldCodes.SeverityNonLocalized, severityText),
            new(ErrorFieldCodes.SqlState, sqlState),
            new(ErrorFieldCodes.Message, message),
        ];
        if (hint is not null)
        {
            fields.Add(new(ErrorFieldCodes.Hint, hint));
        }

        ErrorNoticeMessage.Write(output, BackendMessageCode.ErrorResponse, Encoding, fields);
    }

    public static void WriteError(IBufferWriter<byte> output, ConsoleException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        WriteError(output, ErrorSeverity.Error, error.SqlState, error.Message, error.Hint);
    }
}
