using System.Buffers;
using PgProxy.Protocol.Backend;

namespace PgProxy.Protocol.Tests.Backend;

public class ParameterStatusMessageTests
{
    [Fact]
    public void Writes_a_hand_computed_message()
    {
        byte[] bytes = Written.Bytes(output => ParameterStatusMessage.Write(output, "TimeZone", "UTC"));

        Assert.Equal([(byte)'S', 0, 0, 0, 17, .. "TimeZone\0UTC\0"u8], bytes);
    }

    [Fact]
    public void Round_trips_from_every_split()
    {
        byte[] body = Written.Body(BackendMessageCode.ParameterStatus, output => ParameterStatusMessage.Write(output, "client_encoding", "UTF8"));

        foreach (ReadOnlySequence<byte> split in Written.Splits(body))
        {
            Assert.True(ParameterStatusMessage.TryRead(split, out string name, out string value));
            Assert.Equal(("client_encoding", "UTF8"), (name, value));
        }
    }

    [Fact]
    public void Truncated_or_trailing_bodies_are_rejected()
    {
        foreach (ReadOnlySequence<byte> prefix in Written.Prefixes("a\0b\0"u8.ToArray()))
        {
            Assert.False(ParameterStatusMessage.TryRead(prefix, out string name, out string value));
            Assert.Equal((string.Empty, string.Empty), (name, value));
        }

        Assert.False(ParameterStatusMessage.TryRead(new ReadOnlySequence<byte>("a\0b\0c"u8.ToArray()), out _, out _));
    }
}
