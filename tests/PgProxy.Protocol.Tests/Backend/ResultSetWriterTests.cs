using System.Buffers;
using System.Text;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Tests.Backend;

public class ResultSetWriterTests
{
    private static readonly string?[][] Rows = [["main", "3"], ["replica", null]];

    [Fact]
    public void Writes_text_columns_rows_and_a_select_tag_that_read_back()
    {
        byte[] bytes = Written.Bytes(output => ResultSetWriter.WriteText(output, Encoding.UTF8, ["name", "sessions"], Rows));
        var buffer = new ReadOnlySequence<byte>(bytes);
        var frames = new List<Frame>();
        while (FrameReader.TryReadFrame(ref buffer, int.MaxValue, out Frame frame) == FrameReadStatus.Complete)
        {
            frames.Add(frame);
        }

        Assert.True(buffer.IsEmpty);
        Assert.Equal("TDDC", new string([.. frames.Select(f => (char)f.Code)]));
        Assert.True(RowDescriptionMessage.TryRead(frames[0].Body, Encoding.UTF8, out FieldDescription[] fields));
        Assert.Equal([FieldDescription.Text("name"), FieldDescription.Text("sessions")], fields);
        Assert.True(DataRowMessage.TryReadText(frames[1].Body, Encoding.UTF8, out string?[] first));
        Assert.Equal(Rows[0], first);
        Assert.True(DataRowMessage.TryReadText(frames[2].Body, Encoding.UTF8, out string?[] second));
        Assert.Equal(Rows[1], second);
        Assert.True(CommandCompleteMessage.TryRead(frames[3].Body, Encoding.UTF8, out string tag));
        Assert.Equal("SELECT 2", tag);
    }

    [Fact]
    public void A_row_of_the_wrong_width_throws()
    {
        Assert.Throws<ArgumentException>(() => Written.Bytes(output => ResultSetWriter.WriteText(output, Encoding.UTF8, ["a", "b"], [["only one"]])));
    }

    [Fact]
    public void A_description_takes_the_format_codes_a_bind_asked_for()
    {
        FieldDescription[] Described(short[] formats)
        {
            byte[] body = Written.Body(BackendMessageCode.RowDescription, output => ResultSetWriter.WriteTextDescription(output, Encoding.UTF8, ["a", "b"], formats));
            Assert.True(RowDescriptionMessage.TryRead(new ReadOnlySequence<byte>(body), Encoding.UTF8, out FieldDescription[] fields));
            return fields;
        }

        Assert.Equal([0, 0], Described([]).Select(f => f.FormatCode));
        Assert.Equal([1, 1], Described([1]).Select(f => f.FormatCode));
        Assert.Equal([1, 0], Described([1, 0]).Select(f => f.FormatCode));
        Assert.All(Described([1]), f => Assert.Equal(FieldDescription.TextTypeOid, f.TypeOid));
        Assert.Throws<ArgumentException>(() => Described([0, 0, 0]));
    }

    [Fact]
    public void Rows_alone_end_with_the_select_tag()
    {
        byte[] bytes = Written.Bytes(output => ResultSetWriter.WriteTextRows(output, Encoding.UTF8, 2, Rows));

        Assert.Equal("DDC", new string([.. Frames(bytes).Select(f => (char)f.Code)]));
    }

    private static List<Frame> Frames(byte[] bytes)
    {
        var buffer = new ReadOnlySequence<byte>(bytes);
        var frames = new List<Frame>();
        while (FrameReader.TryReadFrame(ref buffer, int.MaxValue, out Frame frame) == FrameReadStatus.Complete)
        {
            frames.Add(frame);
        }

        return frames;
    }
}
