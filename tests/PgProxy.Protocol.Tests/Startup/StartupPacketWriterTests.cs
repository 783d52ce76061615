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
}
