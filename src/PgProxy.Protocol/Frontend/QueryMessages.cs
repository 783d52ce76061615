using System.Buffers;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Frontend;

/// <summary>A decoded Parse message: statement name, query text and the declared parameter type OIDs, kept exactly.</summary>
public sealed record ParseMessage(string StatementName, string Text, uint[] ParameterTypes);

/// <summary>Reads and writes the messages that carry SQL text: Query ('Q') and Parse ('P'), plus the Bind and Execute the proxy sends itself.</summary>
public static class QueryMessages
{
    /// <summary>Decodes a Query body: one NUL-terminated string in the client's encoding.</summary>
    public static bool TryReadQuery(in ReadOnlySequence<byte> body, Encoding encoding, out string text)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        var reader = new SequenceReader<byte>(body);
        if (!TryReadCString(ref reader, encoding, out text) || !reader.End)
        {
            text = string.Empty;
            return false;
        }

        return true;
    }

    /// <summary>Decodes a Parse body: name, text, Int16 count, then that many Int32 type OIDs.</summary>
    public static bool TryReadParse(in ReadOnlySequence<byte> body, Encoding encoding, out ParseMessage? message)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        message = null;
        var reader = new SequenceReader<byte>(body);
        if (!TryReadCString(ref reader, encoding, out string name)
            || !TryReadCString(ref reader, encoding, out string text)
            || !reader.TryReadBigEndian(out short count)
            || count < 0
            || reader.Remaining != count * 4L)
        {
            return false;
        }

        var types = new uint[count];
        for (int i = 0; i < count; i++)
        {
            reader.TryReadBigEndian(out int oid);
            types[i] = (uint)oid;
        }

        message = new ParseMessage(name, text, types);
        return true;
    }

    /// <summary>Writes a whole Query message.</summary>
    public static void WriteQuery(IBufferWriter<byte> writer, Encoding encoding, string text)
    {
        var message = MessageWriter.Start(writer, FrontendMessageCode.Query, WireFormat.CStringSize(text, encoding));
        message.WriteCString(text, encoding);
        message.Complete();
    }

    /// <summary>Writes a whole Parse message; the parameter types are written as given.</summary>
    public static void WriteParse(IBufferWriter<byte> writer, Encoding encoding, string statementName, string text, ReadOnlySpan<uint> parameterTypes)
    {
        int bodyLength = checked(WireFormat.CStringSize(statementName, encoding) + WireFormat.CStringSize(text, encoding)
            + WireFormat.Int16Size + (WireFormat.Int32Size * parameterTypes.Length));
        var message = MessageWriter.Start(writer, FrontendMessageCode.Parse, bodyLength);
        message.WriteCString(statementName, encoding);
        message.WriteCString(text, encoding);
        message.WriteInt16(checked((short)parameterTypes.Length));
        foreach (uint oid in parameterTypes)
        {
            message.WriteUInt32(oid);
        }

        message.Complete();
    }

    /// <summary>Writes Bind of the unnamed statement to the unnamed portal, with no parameters and text results.</summary>
    public static void WriteBindUnnamed(IBufferWriter<byte> writer)
    {
        // Portal and statement names (empty Strings), then three Int16 counts of zero: formats, parameters, result formats.
        const int bodyLength = WireFormat.TerminatorSize + WireFormat.TerminatorSize + (3 * WireFormat.Int16Size);
        var message = MessageWriter.Start(writer, FrontendMessageCode.Bind, bodyLength);
        message.WriteZeros(bodyLength);
        message.Complete();
    }

    /// <summary>
    /// Writes Bind of the unnamed statement to the unnamed portal with text parameters (null: SQL NULL) and text
    /// results.
    /// </summary>
    public static void WriteBindUnnamed(IBufferWriter<byte> writer, Encoding encoding, IReadOnlyList<string?> parameters)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        ArgumentNullException.ThrowIfNull(parameters);
        int bodyLength = WireFormat.TerminatorSize + WireFormat.TerminatorSize + WireFormat.Int16Size + WireFormat.Int16Size + WireFormat.Int16Size;
        foreach (string? parameter in parameters)
        {
            bodyLength = checked(bodyLength + WireFormat.Int32Size + (parameter is null ? 0 : encoding.GetByteCount(parameter)));
        }

        var message = MessageWriter.Start(writer, FrontendMessageCode.Bind, bodyLength);
        message.WriteZeros(WireFormat.TerminatorSize + WireFormat.TerminatorSize + WireFormat.Int16Size); // names, no formats: text
        message.WriteInt16(checked((short)parameters.Count));
        foreach (string? parameter in parameters)
        {
            if (parameter is null)
            {
                message.WriteInt32(WireFormat.NullValueLength);
            }
            else
            {
                message.WriteLengthPrefixedText(parameter, encoding);
            }
        }

        message.WriteInt16(0); // no result formats: text
        message.Complete();
    }

    /// <summary>Writes Execute of the unnamed portal, all rows.</summary>
    public static void WriteExecuteUnnamed(IBufferWriter<byte> writer)
    {
        // The unnamed portal (an empty String), then a row limit of zero: no limit.
        const int bodyLength = WireFormat.TerminatorSize + WireFormat.Int32Size;
        var message = MessageWriter.Start(writer, FrontendMessageCode.Execute, bodyLength);
        message.WriteZeros(bodyLength);
        message.Complete();
    }

    internal static bool TryReadCString(ref SequenceReader<byte> reader, Encoding encoding, out string value)
    {
        if (!reader.TryReadTo(out ReadOnlySequence<byte> bytes, (byte)0))
        {
            value = string.Empty;
            return false;
        }

        value = SequenceBytes.Text(bytes, encoding);
        return true;
    }
}
