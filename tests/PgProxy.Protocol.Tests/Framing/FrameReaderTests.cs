using System.Buffers;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Tests.Framing;

public class FrameReaderTests
{
    private static byte[] Message(char code, params byte[] body)
    {
        var bytes = new byte[5 + body.Length];
        bytes[0] = (byte)code;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(1), body.Length + 4);
        body.CopyTo(bytes, 5);
        return bytes;
    }

    [Fact]
    public void Reads_consecutive_frames_and_leaves_the_rest()
    {
        byte[] stream = [.. Message('Q', "SELECT 1\0"u8.ToArray()), .. Message('S'), 0x51, 0x00];
        var buffer = new ReadOnlySequence<byte>(stream);

        Assert.Equal(FrameReadStatus.Complete, FrameReader.TryReadFrame(ref buffer, 1 << 30, out Frame first));
        Assert.Equal((byte)'Q', first.Code);
        Assert.Equal("SELECT 1\0"u8.ToArray(), first.Body.ToArray());

        Assert.Equal(FrameReadStatus.Complete, FrameReader.TryReadFrame(ref buffer, 1 << 30, out Frame second));
        Assert.Equal((byte)'S', second.Code);
        Assert.True(second.Body.IsEmpty);

        Assert.Equal(FrameReadStatus.Incomplete, FrameReader.TryReadFrame(ref buffer, 1 << 30, out _));
        Assert.Equal(2, buffer.Length);
    }

    [Fact]
    public void Frame_body_is_a_slice_of_the_input_not_a_copy()
    {
        byte[] stream = Message('d', 1, 2, 3);
        var buffer = new ReadOnlySequence<byte>(stream);

        FrameReader.TryReadFrame(ref buffer, 100, out Frame frame);
        stream[5] = 42;

        Assert.Equal(42, frame.Body.FirstSpan[0]);
    }

    [Fact]
    public void Oversized_frame_is_refused_from_its_header_before_the_body_arrives()
    {
        byte[] header = [(byte)'Q', 0x40, 0, 0, 0]; // announces 1 GiB
        var buffer = new ReadOnlySequence<byte>(header);

        Assert.Equal(FrameReadStatus.TooLarge, FrameReader.TryReadFrame(ref buffer, 1000, out _));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void Length_below_four_is_invalid(int length)
    {
        var header = new byte[5];
        header[0] = (byte)'Q';
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), length);
        var buffer = new ReadOnlySequence<byte>(header);

        Assert.Equal(FrameReadStatus.InvalidLength, FrameReader.TryReadFrame(ref buffer, int.MaxValue, out _));
    }

    [Fact]
    public void Header_split_across_segments_is_read()
    {
        byte[] message = Message('Z', (byte)'I');
        ReadOnlySequence<byte> buffer = Segments.Split(message, 1, 2, 3);

        Assert.True(MessageHeader.TryPeek(buffer, out MessageHeader header));
        Assert.Equal(new MessageHeader((byte)'Z', 5), header);
        Assert.Equal(FrameReadStatus.Complete, FrameReader.TryReadFrame(ref buffer, 100, out Frame frame));
        Assert.Equal((byte)'I', frame.Body.FirstSpan[0]);
    }

    [Fact]
    public void Every_split_of_a_pipelined_batch_yields_the_same_frames()
    {
        byte[] batch =
        [
            .. Message('P', "\0SELECT $1\0\0\0"u8.ToArray()),
            .. Message('B', new byte[14]),
            .. Message('E', 0, 0, 0, 0, 0),
            .. Message('S'),
        ];
        for (int cut = 1; cut < batch.Length; cut++)
        {
            ReadOnlySequence<byte> buffer = Segments.Split(batch, cut);
            var codes = new List<char>();
            while (FrameReader.TryReadFrame(ref buffer, 1 << 20, out Frame frame) == FrameReadStatus.Complete)
            {
                codes.Add((char)frame.Code);
            }

            Assert.Equal("PBES", new string([.. codes]));
            Assert.Equal(0, buffer.Length);
        }
    }
}
