using System.Buffers;
using PgProxy.Protocol.Startup;

namespace PgProxy.Protocol.Tests.Startup;

public class StartupPacketWriterTests
{
    [Fact]
    public void Writes_a_hand_computed_packet()
    {
        byte[] packet = StartupPacketWriter.Build(StartupCodes.Protocol30, [new("user", "u")]);

        Assert.Equal([0, 0, 0, 16, 0, 3, 0, 0, .. "user\0u\0\0"u8], packet);
    }

    [Fact]
    public void Reads_back_with_its_parameters_in_order()
    {
        KeyValuePair<string, string>[] parameters = [new("user", "ann"), new("database", "bücher"), new("application_name", "")];
        var buffer = new ReadOnlySequence<byte>(StartupPacketWriter.Build(StartupCodes.Protocol32, parameters));

        Assert.Equal(StartupReadStatus.Complete, StartupPacketReader.TryRead(ref buffer, out StartupPacket? packet, out _));
        Assert.Equal(StartupCodes.Protocol32, packet!.VersionCode);
        Assert.Equal(parameters, packet.Parameters);
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void A_cancel_request_reads_back_as_one_with_its_bytes()
    {
        byte[] packet = StartupPacketWriter.BuildCancelRequest(4711, [1, 2, 3, 4]);
        var buffer = new ReadOnlySequence<byte>(packet);

        Assert.Equal([0, 0, 0, 16, 0x04, 0xD2, 0x16, 0x2E, 0, 0, 0x12, 0x67, 1, 2, 3, 4], packet);
        Assert.Equal(StartupReadStatus.Complete, StartupPacketReader.TryRead(ref buffer, out StartupPacket? read, out _));
        Assert.Equal(StartupPacketKind.CancelRequest, read!.Kind);
        Assert.Equal(packet, read.RawBytes);
    }

    [Fact]
    public void A_cancel_key_of_the_wrong_length_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => StartupPacketWriter.BuildCancelRequest(1, [1, 2, 3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => StartupPacketWriter.BuildCancelRequest(1, new byte[257]));
    }
}
