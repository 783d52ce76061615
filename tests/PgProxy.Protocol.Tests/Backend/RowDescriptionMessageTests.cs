using System.Buffers;
using System.Text;
using PgProxy.Protocol.Backend;

namespace PgProxy.Protocol.Tests.Backend;

public class RowDescriptionMessageTests
{
    private static readonly FieldDescription[] Fields =
    [
        new("id", 16384, 1, 23, 4, -1, 0),
        new("prénom", 16384, 2, 1043, -1, 36, 1),
        FieldDescription.Text("computed"),
    ];

    private static byte[] Body() => Written.Body(BackendMessageCode.RowDescription, output => RowDescriptionMessage.Write(output, Encoding.UTF8, Fields));

    [Fact]
    public void Writes_a_hand_computed_message()
    {
        byte[] bytes = Written.Bytes(output => RowDescriptionMessage.Write(output, Encoding.UTF8, [new FieldDescription("a", 0x01020304, 5, 23, 4, -1, 1)]));

        byte[] expected =
        [
            (byte)'T', 0, 0, 0, 26, // the length itself, the count, "a\0" and 18 fixed bytes
            0, 1,
            (byte)'a', 0,
            1, 2, 3, 4,
            0, 5,
            0, 0, 0, 23,
            0, 4,
            0xFF, 0xFF, 0xFF, 0xFF,
            0, 1,
        ];
        Assert.Equal(expected, bytes);
    }

    [Fact]
    public void Round_trips_every_field()
    {
        byte[] body = Body();

        Assert.True(RowDescriptionMessage.TryRead(new ReadOnlySequence<byte>(body), Encoding.UTF8, out FieldDescription[] read));
        Assert.Equal(Fields, read);
    }

    [Fact]
    public void Reads_the_same_from_every_split_of_the_body()
    {
        byte[] body = Body();

        foreach (ReadOnlySequence<byte> split in Written.Splits(body))
        {
            Assert.True(RowDescriptionMessage.TryRead(split, Encoding.UTF8, out FieldDescription[] read));
            Assert.Equal(Fields, read);
        }
    }

    [Fact]
    public void Every_truncation_is_rejected()
    {
        byte[] body = Body();

        foreach (ReadOnlySequence<byte> prefix in Written.Prefixes(body))
        {
            Assert.False(RowDescriptionMessage.TryRead(prefix, Encoding.UTF8, out FieldDescription[] read));
            Assert.Empty(read);
        }
    }

    [Theory]
    [InlineData(new byte[] { 0xFF, 0xFF })] // negative count
    [InlineData(new byte[] { 0x7F, 0xFF, (byte)'a', 0 })] // a count the body cannot hold
    [InlineData(new byte[] { 0, 0, 0 })] // bytes after the last field
    public void Garbled_bodies_are_rejected(byte[] body)
    {
        Assert.False(RowDescriptionMessage.TryRead(new ReadOnlySequence<byte>(body), Encoding.UTF8, out _));
    }

    [Fact]
    public void A_name_invalid_in_a_strict_encoding_is_rejected_not_thrown()
    {
        byte[] body = Written.Body(BackendMessageCode.RowDescription, output => RowDescriptionMessage.Write(output, Encoding.Latin1, [FieldDescription.Text("\u00e9")]));

        Assert.False(RowDescriptionMessage.TryRead(new ReadOnlySequence<byte>(body), PostgresEncodings.Utf8, out _));
    }

    [Fact]
    public void The_old_column_name_reader_reads_through_it()
    {
        byte[] body = Body();

        Assert.True(BackendMessages.TryReadColumnNames(new ReadOnlySequence<byte>(body), Encoding.UTF8, out string[] names));
        Assert.Equal(["id", "prénom", "computed"], names);
    }
}
