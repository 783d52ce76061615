using System.Buffers;
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
}
