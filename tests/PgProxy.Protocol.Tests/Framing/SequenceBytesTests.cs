using System.Buffers;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Tests.Framing;

public sealed class SequenceBytesTests
{
    [Fact]
    public void The_first_byte_behind_an_empty_segment_is_found()
    {
        // A sequence may legally start with an empty segment; FirstSpan[0] would throw on it.
        ReadOnlySequence<byte> body = Segments.AfterEmptySegment([(byte)'T']);

        Assert.True(body.FirstSpan.IsEmpty);
        Assert.Equal((byte)'T', SequenceBytes.First(body));
    }

    [Fact]
    public void The_first_byte_of_a_body_cut_from_its_header_is_its_own()
    {
        ReadOnlySequence<byte> frame = Segments.Split([(byte)'Z', 0, 0, 0, 5, (byte)'E'], 5);

        Assert.Equal((byte)'E', SequenceBytes.First(frame.Slice(MessageHeader.Size)));
    }

    [Fact]
    public void An_empty_sequence_has_no_first_byte()
    {
        Assert.Throws<ArgumentException>(() => SequenceBytes.First(ReadOnlySequence<byte>.Empty));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    public void Text_cut_anywhere_decodes_as_the_whole_would_even_inside_a_character(int piece)
    {
        // "ü" is two bytes and "€" three in UTF-8: pieces of 1 to 7 bytes cut through them.
        string text = "SELECT 'grüße € 42', $1 -- " + new string('x', 5000) + " ü€";
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        int[] cuts = Enumerable.Range(1, bytes.Length / piece).Select(i => i * piece).ToArray();

        Assert.Equal(text, SequenceBytes.Text(Segments.Split(bytes, cuts), Encoding.UTF8));
    }

    [Fact]
    public void Text_of_invalid_bytes_throws_the_encodings_fallback_exception_from_any_segment()
    {
        Encoding strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        byte[] bytes = [.. "SELECT "u8, 0xC3, .. " 1"u8];

        Assert.Throws<DecoderFallbackException>(() => SequenceBytes.Text(Segments.Split(bytes, 3, 8), strict));
    }

    [Fact]
    public void Text_of_an_empty_or_single_segment_sequence_is_plain_decoding()
    {
        Assert.Equal(string.Empty, SequenceBytes.Text(ReadOnlySequence<byte>.Empty, Encoding.UTF8));
        Assert.Equal("héllo", SequenceBytes.Text(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes("héllo")), Encoding.UTF8));
    }
}
