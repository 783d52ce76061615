using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using PgProxy.Protocol;

namespace PgProxy.Benchmarks;

/// <summary>A decoded Parse message: statement name, query text, parameter type OIDs.</summary>
internal readonly record struct ParseMessage(string Statement, string Query, int[] ParameterTypes);

/// <summary>
/// The baseline for query interceptors: the least work an interceptor of Query ('Q') and Parse ('P') adds over
/// pass-through, that is decode the body to text (UTF-8) and write the message back. Written in the style of
/// PgProxy.Protocol's writers (exact length first, checked after writing), but kept here until the protocol library
/// has its own Query and Parse codecs, which should then replace it in the benchmark.
/// </summary>
internal static class QueryCodec
{
    public static string DecodeQuery(in ReadOnlySequence<byte> body)
    {
        var reader = new SequenceReader<byte>(body);
        return ReadCString(ref reader);
    }

    public static ParseMessage DecodeParse(in ReadOnlySequence<byte> body)
    {
        var reader = new SequenceReader<byte>(body);
        string statement = ReadCString(ref reader);
        string query = ReadCString(ref reader);
        if (!reader.TryReadBigEndian(out short count) || count < 0)
        {
            throw new InvalidDataException("Parse without a parameter count");
        }

        int[] types = count == 0 ? [] : new int[count];
        for (int i = 0; i < types.Length; i++)
        {
            if (!reader.TryReadBigEndian(out types[i]))
            {
                throw new InvalidDataException("Parse shorter than its parameter count");
            }
        }

        return new ParseMessage(statement, query, types);
    }

    public static void WriteQuery(IBufferWriter<byte> writer, string query)
    {
        int length = 4 + Encoding.UTF8.GetByteCount(query) + 1;
        Span<byte> span = writer.GetSpan(1 + length);
        span[0] = (byte)FrontendMessageCode.Query;
        BinaryPrimitives.WriteInt32BigEndian(span[1..], length);
        int offset = 5 + WriteCString(span[5..], query);
        Check(offset, length);
        writer.Advance(offset);
    }

    public static void WriteParse(IBufferWriter<byte> writer, in ParseMessage parse)
    {
        int length = 4
            + Encoding.UTF8.GetByteCount(parse.Statement) + 1
            + Encoding.UTF8.GetByteCount(parse.Query) + 1
            + 2 + (4 * parse.ParameterTypes.Length);
        Span<byte> span = writer.GetSpan(1 + length);
        span[0] = (byte)FrontendMessageCode.Parse;
        BinaryPrimitives.WriteInt32BigEndian(span[1..], length);
        int offset = 5;
        offset += WriteCString(span[offset..], parse.Statement);
        offset += WriteCString(span[offset..], parse.Query);
        BinaryPrimitives.WriteInt16BigEndian(span[offset..], (short)parse.ParameterTypes.Length);
        offset += 2;
        foreach (int type in parse.ParameterTypes)
        {
            BinaryPrimitives.WriteInt32BigEndian(span[offset..], type);
            offset += 4;
        }

        Check(offset, length);
        writer.Advance(offset);
    }

    private static string ReadCString(ref SequenceReader<byte> reader)
    {
        if (!reader.TryReadTo(out ReadOnlySequence<byte> text, 0))
        {
            throw new InvalidDataException("string without its terminating zero");
        }

        return Encoding.UTF8.GetString(text);
    }

    private static int WriteCString(Span<byte> destination, string value)
    {
        int written = Encoding.UTF8.GetBytes(value, destination);
        destination[written] = 0;
        return written + 1;
    }

    private static void Check(int offset, int length)
    {
        if (offset != 1 + length)
        {
            throw new UnreachableException($"message announced {length} bytes but wrote {offset - 1}");
        }
    }
}
