using System.Buffers;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Startup;

namespace PgProxy.Protocol.Tests.Backend;

public class BackendKeyDataMessageTests
{
    [Fact]
    public void Writes_a_hand_computed_protocol_3_0_message()
    {
        byte[] bytes = Written.Bytes(output => BackendKeyDataMessage.Write(output, StartupCodes.Protocol30, 0x01020304, [9, 8, 7, 6]));

        Assert.Equal(new byte[] { (byte)'K', 0, 0, 0, 12, 1, 2, 3, 4, 9, 8, 7, 6 }, bytes);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    [InlineData(256)]
    public void Protocol_3_2_keys_of_4_to_256_bytes_round_trip_from_every_split(int keyLength)
    {
        byte[] key = [.. Enumerable.Range(0, keyLength).Select(i => (byte)i)];
        byte[] body = Written.Body(BackendMessageCode.BackendKeyData, output => BackendKeyDataMessage.Write(output, StartupCodes.Protocol32, -7, key));

        foreach (ReadOnlySequence<byte> split in Written.Splits(body))
        {
            Assert.True(BackendKeyDataMessage.TryRead(split, StartupCodes.Protocol32, out int processId, out ReadOnlySequence<byte> secretKey));
            Assert.Equal(-7, processId);
            Assert.Equal(key, secretKey.ToArray());
        }
    }

    [Theory]
    [InlineData(3)]
    [InlineData(257)]
    public void Protocol_3_2_refuses_keys_outside_4_to_256_bytes(int keyLength)
    {
        byte[] body = new byte[4 + keyLength];

        Assert.False(BackendKeyDataMessage.TryRead(new ReadOnlySequence<byte>(body), StartupCodes.Protocol32, out _, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => Written.Bytes(output => BackendKeyDataMessage.Write(output, StartupCodes.Protocol32, 1, new byte[keyLength])));
    }

    [Fact]
    public void Protocol_3_0_refuses_any_key_but_four_bytes()
    {
        foreach (ReadOnlySequence<byte> prefix in Written.Prefixes(new byte[8]))
        {
            Assert.False(BackendKeyDataMessage.TryRead(prefix, StartupCodes.Protocol30, out int processId, out _));
            Assert.Equal(0, processId);
        }

        Assert.False(BackendKeyDataMessage.TryRead(new ReadOnlySequence<byte>(new byte[4 + 32]), StartupCodes.Protocol30, out _, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => Written.Bytes(output => BackendKeyDataMessage.Write(output, StartupCodes.Protocol30, 1, new byte[32])));
    }
}
