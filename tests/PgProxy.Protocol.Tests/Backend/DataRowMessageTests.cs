using System.Buffers;
using System.Text;
using PgProxy.Protocol.Backend;

namespace PgProxy.Protocol.Tests.Backend;

public class DataRowMessageTests
{
    private static readonly string?[] TextValues = ["1", null, "", "été"];

    private static byte[] TextBody() => Written.Body(BackendMessageCode.DataRow, output => DataRowMessage.WriteText(output, Encoding.UTF8, TextValues));

    [Fact]
    public void Writes_a_hand_computed_message()
    {
        byte[] bytes = Written.Bytes(output => DataRowMessage.Write(output, [new byte[] { 0xAB }, null, ReadOnlyMemory<byte>.Empty]));

        byte[] expected =
        [
            (byte)'D', 0, 0, 0, 19, // the length itself, the count, then 4 + 1, 4 and 4 bytes
            0, 3,
            0, 0, 0, 1, 0xAB,
            0xFF, 0xFF, 0xFF, 0xFF,
            0, 0, 0, 0,
        ];
        Assert.Equal(expected, bytes);
    }

    [Fact]
    public void Text_values_round_trip_with_null_apart_from_empty()
    {
        Assert.True(DataRowMessage.TryReadText(new ReadOnlySequence<byte>(TextBody()), Encoding.UTF8, out string?[] values));
        Assert.Equal(TextValues, values);
    }

    [Fact]
    public void Values_are_slices_of_the_body()
    {
        byte[] body = TextBody();
        Assert.True(DataRowMessage.TryRead(new ReadOnlySequence<byte>(body), out DataRow row));
        Assert.Equal(4, row.ColumnCount);

        var lengths = new List<long>();
        foreach (DataRowValue value in row)
        {
            lengths.Add(value.IsNull ? -1 : value.Bytes.Length);
        }

        Assert.Equal([1L, -1L, 0L, 5L], lengths);
        body[2 + 4] = (byte)'9'; // the first value's only byte
        foreach (DataRowValue value in row)
        {
            Assert.Equal("9", value.ToText(Encoding.UTF8));
            break;
        }
    }

    [Fact]
    public void Reads_the_same_from_every_split_of_the_body()
    {
        foreach (ReadOnlySequence<byte> split in Written.Splits(TextBody()))
        {
            Assert.True(DataRowMessage.TryReadText(split, Encoding.UTF8, out string?[] values));
            Assert.Equal(TextValues, values);
        }
    }

    [Fact]
    public void Every_truncation_is_rejected()
    {
        foreach (ReadOnlySequence<byte> prefix in Written.Prefixes(TextBody()))
        {
            Assert.False(DataRowMessage.TryRead(prefix, out _));
            Assert.False(DataRowMessage.TryReadText(prefix, Encoding.UTF8, out _));
        }
    }

    [Theory]
    [InlineData(new byte[] { 0xFF, 0xFF })] // negative count
    [InlineData(new byte[] { 0, 1, 0xFF, 0xFF, 0xFF, 0xFE })] // length -2
    [InlineData(new byte[] { 0, 1, 0x7F, 0xFF, 0xFF, 0xFF, 1 })] // a length beyond the body
    [InlineData(new byte[] { 0, 1, 0, 0, 0, 0, 0 })] // a byte after the last value
    public void Garbled_bodies_are_rejected(byte[] body)
    {
        Assert.False(DataRowMessage.TryRead(new ReadOnlySequence<byte>(body), out DataRow row));
        Assert.Equal(0, row.ColumnCount);
    }

    [Fact]
    public void Text_invalid_in_a_strict_encoding_is_rejected_not_thrown()
    {
        byte[] body = Written.Bytes(output => DataRowMessage.Write(output, [new byte[] { 0xC3 }]))[PgProxy.Protocol.Framing.MessageHeader.Size..];

        Assert.True(DataRowMessage.TryRead(new ReadOnlySequence<byte>(body), out _));
        Assert.False(DataRowMessage.TryReadText(new ReadOnlySequence<byte>(body), PostgresEncodings.Utf8, out _));
    }

    [Fact]
    public void The_span_check_agrees_with_the_sequence_reader_on_every_cut_and_every_changed_byte()
    {
        byte[] body = TextBody();
        for (int length = 0; length <= body.Length; length++)
        {
            Agree(body[..length]);
        }

        byte[] trailing = [.. body, 0];
        Agree(trailing);
        for (int at = 0; at < body.Length; at++)
        {
            foreach (byte value in new byte[] { 0x00, 0x7F, 0x80, 0xFF })
            {
                byte[] changed = (byte[])body.Clone();
                changed[at] = value;
                Agree(changed);
            }
        }

        static void Agree(byte[] candidate)
        {
            bool read = DataRowMessage.TryRead(new ReadOnlySequence<byte>(candidate), out DataRow row);
            Assert.Equal(read, DataRowMessage.TryCheck(candidate, out int count));
            Assert.Equal(read ? row.ColumnCount : 0, count);
        }
    }
}
