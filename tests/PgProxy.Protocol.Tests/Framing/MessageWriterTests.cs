using System.Buffers;
using System.Text;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Protocol.Tests.Framing;

public class MessageWriterTests
{
    [Fact]
    public void Writes_the_header_then_the_body_big_endian()
    {
        var output = new ArrayBufferWriter<byte>();
        var writer = MessageWriter.Start(output, (byte)'x', 2 + 4 + 3);
        writer.WriteInt16(0x0102);
        writer.WriteInt32(-2);
        writer.WriteCString("ab", Encoding.ASCII);
        writer.Complete();

        Assert.Equal(new byte[] { (byte)'x', 0, 0, 0, 13, 1, 2, 0xFF, 0xFF, 0xFF, 0xFE, (byte)'a', (byte)'b', 0 }, output.WrittenSpan.ToArray());
    }

    [Fact]
    public void Completing_short_of_the_announced_length_throws_and_commits_nothing()
    {
        var output = new ArrayBufferWriter<byte>();

        var error = Assert.Throws<InvalidOperationException>(() =>
        {
            var writer = MessageWriter.Start(output, (byte)'x', 3);
            writer.WriteInt16(7);
            writer.Complete();
        });

        Assert.Contains("3-byte body but 2 bytes were written", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, output.WrittenCount);
    }

    [Fact]
    public void Writing_past_the_announced_length_throws()
    {
        var output = new ArrayBufferWriter<byte>();

        Assert.Throws<InvalidOperationException>(() =>
        {
            var writer = MessageWriter.Start(output, (byte)'x', 3);
            writer.WriteInt32(7);
        });
        Assert.Throws<InvalidOperationException>(() =>
        {
            var writer = MessageWriter.Start(output, (byte)'x', 3);
            writer.WriteCString("abc", Encoding.ASCII);
        });
        Assert.Equal(0, output.WrittenCount);
    }

    [Fact]
    public void A_length_prefixed_text_counts_bytes_not_chars()
    {
        var output = new ArrayBufferWriter<byte>();
        var writer = MessageWriter.Start(output, (byte)'x', 4 + 2);
        writer.WriteLengthPrefixedText("é", Encoding.UTF8);
        writer.Complete();

        Assert.Equal(new byte[] { 0, 0, 0, 2, 0xC3, 0xA9 }, output.WrittenSpan[MessageHeader.Size..].ToArray());
    }

    [Fact]
    public void Frontend_writers_keep_their_bytes()
    {
        var output = new ArrayBufferWriter<byte>();
        QueryMessages.WriteQuery(output, Encoding.UTF8, "SELECT 1");
        QueryMessages.WriteParse(output, Encoding.UTF8, "s", "q", [23u]);
        QueryMessages.WriteBindUnnamed(output);
        QueryMessages.WriteExecuteUnnamed(output);

        byte[] expected =
        [
            (byte)'Q', 0, 0, 0, 13, .. "SELECT 1\0"u8,
            (byte)'P', 0, 0, 0, 14, (byte)'s', 0, (byte)'q', 0, 0, 1, 0, 0, 0, 23,
            (byte)'B', 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0,
            (byte)'E', 0, 0, 0, 9, 0, 0, 0, 0, 0,
        ];
        Assert.Equal(expected, output.WrittenSpan.ToArray());
    }
}
