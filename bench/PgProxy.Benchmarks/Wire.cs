using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PgProxy.Protocol;

namespace PgProxy.Benchmarks;

/// <summary>
/// Builds the messages pgbench's select-only transaction puts on the wire (extended protocol, prepared statement):
/// the client sends Bind, Describe, Execute, Sync; the server answers BindComplete, DataRow, CommandComplete,
/// ReadyForQuery. The bytes are what PostgreSQL and libpq send, so framing sees real sizes.
/// </summary>
internal static class Wire
{
    public const string PgbenchSelect = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;";

    /// <summary>Frontend half of one pgbench -S -M prepared transaction: four messages.</summary>
    public static byte[] FrontendTransaction(int aid)
    {
        var writer = new ArrayBufferWriter<byte>();
        byte[] aidText = Encoding.ASCII.GetBytes(aid.ToString(System.Globalization.CultureInfo.InvariantCulture));

        // Bind: portal "", statement "P0_1", 0 parameter formats, 1 parameter (text), 0 result formats.
        var bind = new ArrayBufferWriter<byte>();
        CString(bind, "");
        CString(bind, "P0_1");
        Int16(bind, 0);
        Int16(bind, 1);
        Int32(bind, aidText.Length);
        bind.Write(aidText);
        Int16(bind, 0);
        Message(writer, (byte)FrontendMessageCode.Bind, bind.WrittenSpan);

        // Describe portal "".
        Message(writer, (byte)FrontendMessageCode.Describe, "P\0"u8);

        // Execute portal "", no row limit.
        Message(writer, (byte)FrontendMessageCode.Execute, "\0\0\0\0\0"u8);

        Message(writer, (byte)FrontendMessageCode.Sync, ReadOnlySpan<byte>.Empty);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>Backend half of one pgbench -S -M prepared transaction: four messages.</summary>
    public static byte[] BackendTransaction(int abalance)
    {
        var writer = new ArrayBufferWriter<byte>();
        Message(writer, (byte)BackendMessageCode.BindComplete, ReadOnlySpan<byte>.Empty);

        byte[] value = Encoding.ASCII.GetBytes(abalance.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var row = new ArrayBufferWriter<byte>();
        Int16(row, 1);
        Int32(row, value.Length);
        row.Write(value);
        Message(writer, (byte)BackendMessageCode.DataRow, row.WrittenSpan);

        Message(writer, (byte)BackendMessageCode.CommandComplete, "SELECT 1\0"u8);
        Message(writer, (byte)BackendMessageCode.ReadyForQuery, "I"u8);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>Both halves of <paramref name="transactions"/> transactions in one buffer: 8 messages each.</summary>
    public static byte[] MixedBatch(int transactions)
    {
        var writer = new ArrayBufferWriter<byte>();
        for (int i = 0; i < transactions; i++)
        {
            writer.Write(FrontendTransaction(10_000 + (i * 7919)));
            writer.Write(BackendTransaction(i * 37));
        }

        return writer.WrittenSpan.ToArray();
    }

    /// <summary>One side of <paramref name="transactions"/> transactions: 4 messages each.</summary>
    public static byte[] OneSide(int transactions, bool frontend)
    {
        var writer = new ArrayBufferWriter<byte>();
        for (int i = 0; i < transactions; i++)
        {
            writer.Write(frontend ? FrontendTransaction(10_000 + (i * 7919)) : BackendTransaction(i * 37));
        }

        return writer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Cuts <paramref name="bytes"/> into segments of <paramref name="segmentSize"/> bytes, so that headers and
    /// bodies straddle segment boundaries the way they do across a pipe's buffers.
    /// </summary>
    public static ReadOnlySequence<byte> Segmented(byte[] bytes, int segmentSize)
    {
        var first = new Segment(bytes.AsMemory(0, Math.Min(segmentSize, bytes.Length)), 0);
        Segment last = first;
        for (int offset = segmentSize; offset < bytes.Length; offset += segmentSize)
        {
            last = last.Append(bytes.AsMemory(offset, Math.Min(segmentSize, bytes.Length - offset)));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>A whole message: code, length, body.</summary>
    public static void Message(ArrayBufferWriter<byte> writer, byte code, ReadOnlySpan<byte> body)
    {
        Span<byte> header = writer.GetSpan(5);
        header[0] = code;
        BinaryPrimitives.WriteInt32BigEndian(header[1..], 4 + body.Length);
        writer.Advance(5);
        writer.Write(body);
    }

    private static void CString(ArrayBufferWriter<byte> writer, string value)
    {
        writer.Write(Encoding.UTF8.GetBytes(value));
        writer.Write("\0"u8);
    }

    private static void Int16(ArrayBufferWriter<byte> writer, short value)
    {
        BinaryPrimitives.WriteInt16BigEndian(writer.GetSpan(2), value);
        writer.Advance(2);
    }

    private static void Int32(ArrayBufferWriter<byte> writer, int value)
    {
        BinaryPrimitives.WriteInt32BigEndian(writer.GetSpan(4), value);
        writer.Advance(4);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
