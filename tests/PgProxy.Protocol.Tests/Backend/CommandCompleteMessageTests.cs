using System.Buffers;
using System.Text;
using PgProxy.Protocol.Backend;

namespace PgProxy.Protocol.Tests.Backend;

public class CommandCompleteMessageTests
{
    [Fact]
    public void Writes_a_hand_computed_message()
    {
        byte[] bytes = Written.Bytes(output => CommandCompleteMessage.Write(output, Encoding.UTF8, CommandCompleteMessage.SelectTag(3)));

        Assert.Equal([(byte)'C', 0, 0, 0, 13, .. "SELECT 3\0"u8], bytes);
    }

    [Fact]
    public void Round_trips_from_every_split()
    {
        byte[] body = Written.Body(BackendMessageCode.CommandComplete, output => CommandCompleteMessage.Write(output, Encoding.UTF8, "INSERT 0 1"));

        foreach (ReadOnlySequence<byte> split in Written.Splits(body).Append(new ReadOnlySequence<byte>(body)))
        {
            Assert.True(CommandCompleteMessage.TryRead(split, Encoding.UTF8, out string tag));
            Assert.Equal("INSERT 0 1", tag);
        }
    }

    [Fact]
    public void Truncated_or_trailing_bodies_are_rejected()
    {
        byte[] body = "UPDATE 2\0"u8.ToArray();
        foreach (ReadOnlySequence<byte> prefix in Written.Prefixes(body))
        {
            Assert.False(CommandCompleteMessage.TryRead(prefix, Encoding.UTF8, out string tag));
            Assert.Empty(tag);
        }

        Assert.False(CommandCompleteMessage.TryRead(new ReadOnlySequence<byte>("UPDATE 2\0x"u8.ToArray()), Encoding.UTF8, out _));
        Assert.False(CommandCompleteMessage.TryRead(new ReadOnlySequence<byte>([0xC3, 0]), PostgresEncodings.Utf8, out _));
    }
}
