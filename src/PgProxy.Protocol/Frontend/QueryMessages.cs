using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;

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
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(encoding);
        int length = 4 + encoding.GetByteCount(text) + 1;
        Span<byte> span = Start(writer, FrontendMessageCode.Query, length);
        int offset = 5 + WriteCString(span[5..], encoding, text);
        Finish(writer, offset, length);
    }

    /// <summary>Writes a whole Parse message; the parameter types are written as given.</summary>
    public static void WriteParse(IBufferWriter<byte> writer, Encoding encoding, string statementName, string text, ReadOnlySpan<uint> parameterTypes)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(encoding);
        int length = 4 + encoding.GetByteCount(statementName) + 1 + encoding.GetByteCount(text) + 1 + 2 + (4 * parameterTypes.Length);
        Span<byte> span = Start(writer, FrontendMessageCode.Parse, length);
        int offset = 5;
        offset += WriteCString(span[offset..], encoding, statementName);
        offset += WriteCString(span[offset..], encoding, text);
        BinaryPrimitives.WriteInt16BigEndian(span[offset..], checked((short)parameterTypes.Length));
        offset += 2;
        foreach (uint oid in parameterTypes)
        {
            BinaryPrimitives.WriteUInt32BigEndian(span[offset..], oid);
            offset += 4;
        }

        Finish(writer, offset, length);
    }

    /// <summary>Writes Bind of the unnamed statement to the unnamed portal, with no parameters and text results.</summary>
    public static void WriteBindUnnamed(IBufferWriter<byte> writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        const int length = 4 + 1 + 1 + 2 + 2 + 2;
        Span<byte> span = Start(writer, FrontendMessageCode.Bind, length);
        span[5..(1 + length)].Clear();
        Finish(writer, 1 + length, length);
    }

    /// <summary>Writes Execute of the unnamed portal, all rows.</summary>
    public static void WriteExecuteUnnamed(IBufferWriter<byte> writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        const int length = 4 + 1 + 4;
        Span<byte> span = Start(writer, FrontendMessageCode.Execute, length);
        span[5..(1 + length)].Clear();
        Finish(writer, 1 + length, length);
    }

    internal static bool TryReadCString(ref SequenceReader<byte> reader, Encoding encoding, out string value)
    {
        if (!reader.TryReadTo(out ReadOnlySequence<byte> bytes, (byte)0))
        {
            value = string.Empty;
            return false;
        }

        value = bytes.IsSingleSegment ? encoding.GetString(bytes.FirstSpan) : encoding.GetString(bytes.ToArray());
        return true;
    }

    private static Span<byte> Start(IBufferWriter<byte> writer, FrontendMessageCode code, int length)
    {
        Span<byte> span = writer.GetSpan(1 + length);
        span[0] = (byte)code;
        BinaryPrimitives.WriteInt32BigEndian(span[1..], length);
        return span;
    }

    private static void Finish(IBufferWriter<byte> writer, int written, int length)
    {
        if (written != 1 + length)
        {
            throw new UnreachableException($"message announced {length} bytes but wrote {written - 1}");
        }

        writer.Advance(written);
    }

    private static int WriteCString(Span<byte> destination, Encoding encoding, string value)
    {
        int written = encoding.GetBytes(value, destination);
        destination[written] = 0;
        return written + 1;
    }
}
