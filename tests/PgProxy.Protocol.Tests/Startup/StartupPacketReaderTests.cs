using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Startup;

namespace PgProxy.Protocol.Tests.Startup;

public class StartupPacketReaderTests
{
    private static byte[] Packet(int code, byte[] body)
    {
        var bytes = new byte[8 + body.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, bytes.Length);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), code);
        body.CopyTo(bytes, 8);
        return bytes;
    }

    private static byte[] Parameters(params string[] pairs) =>
        Encoding.UTF8.GetBytes(string.Concat(pairs.Select(p => p + "\0")) + "\0");

    private static StartupReadStatus Read(byte[] bytes, out StartupPacket? packet, out ProtocolError? error)
    {
        var buffer = new ReadOnlySequence<byte>(bytes);
        return StartupPacketReader.TryRead(ref buffer, out packet, out error);
    }

    [Fact]
    public void Startup_message_keeps_parameters_in_order_and_raw_bytes()
    {
        byte[] bytes = Packet(StartupCodes.Protocol30, Parameters("user", "alice", "database", "sales", "application_name", "Tableau"));

        Assert.Equal(StartupReadStatus.Complete, Read(bytes, out StartupPacket? packet, out _));
        Assert.Equal(StartupPacketKind.Startup, packet!.Kind);
        Assert.Equal(["user", "database", "application_name"], packet.Parameters.Select(p => p.Key));
        Assert.Equal("sales", packet.GetParameter("database"));
        Assert.Equal(bytes, packet.RawBytes);
    }

    [Fact]
    public void Protocol_3_2_is_accepted_for_the_server_to_negotiate()
    {
        Assert.Equal(StartupReadStatus.Complete, Read(Packet(StartupCodes.Protocol32, Parameters("user", "u")), out StartupPacket? packet, out _));
        Assert.Equal(StartupCodes.Protocol32, packet!.VersionCode);
    }

    [Theory]
    [InlineData(StartupCodes.SslRequest, StartupPacketKind.SslRequest)]
    [InlineData(StartupCodes.GssEncRequest, StartupPacketKind.GssEncRequest)]
    public void Encryption_requests_are_recognised(int code, StartupPacketKind kind)
    {
        Assert.Equal(StartupReadStatus.Complete, Read(Packet(code, []), out StartupPacket? packet, out _));
        Assert.Equal(kind, packet!.Kind);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(256)]
    public void Cancel_request_with_a_key_of_protocol_3_0_or_3_2_is_accepted(int keyLength)
    {
        Assert.Equal(StartupReadStatus.Complete, Read(Packet(StartupCodes.CancelRequest, new byte[keyLength]), out StartupPacket? packet, out _));
        Assert.Equal(StartupPacketKind.CancelRequest, packet!.Kind);
    }

    [Fact]
    public void Waits_for_the_whole_packet()
    {
        byte[] bytes = Packet(StartupCodes.Protocol30, Parameters("user", "u"));
        var buffer = new ReadOnlySequence<byte>(bytes, 0, bytes.Length - 1);

        Assert.Equal(StartupReadStatus.Incomplete, StartupPacketReader.TryRead(ref buffer, out _, out _));
        Assert.Equal(bytes.Length - 1, buffer.Length);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(10_001)]
    [InlineData(-5)]
    [InlineData(0x16030100)] // a TLS ClientHello read as a length
    public void Impossible_lengths_are_refused_from_the_first_four_bytes(int length)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(bytes, length);

        Assert.Equal(StartupReadStatus.Invalid, Read(bytes, out _, out ProtocolError? error));
        Assert.Equal(SqlStates.ProtocolViolation, error!.SqlState);
    }

    [Theory]
    [InlineData(2, 0)]
    [InlineData(4, 0)]
    public void Other_protocol_versions_are_not_supported(int major, int minor)
    {
        Assert.Equal(StartupReadStatus.Invalid, Read(Packet((major << 16) | minor, Parameters("user", "u")), out _, out ProtocolError? error));
        Assert.Equal(SqlStates.FeatureNotSupported, error!.SqlState);
        Assert.Contains($"{major}.{minor}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_final_terminator_is_a_protocol_violation()
    {
        byte[] body = Encoding.UTF8.GetBytes("user\0alice\0");
        Assert.Equal(StartupReadStatus.Invalid, Read(Packet(StartupCodes.Protocol30, body), out _, out ProtocolError? error));
        Assert.Equal(SqlStates.ProtocolViolation, error!.SqlState);
    }

    [Fact]
    public void Name_without_value_is_a_protocol_violation()
    {
        byte[] body = Encoding.UTF8.GetBytes("user\0alice\0database\0");
        Assert.Equal(StartupReadStatus.Invalid, Read(Packet(StartupCodes.Protocol30, body), out _, out ProtocolError? error));
        Assert.Equal(SqlStates.ProtocolViolation, error!.SqlState);
    }

    [Fact]
    public void Missing_user_is_refused_with_28000()
    {
        Assert.Equal(StartupReadStatus.Invalid, Read(Packet(StartupCodes.Protocol30, Parameters("database", "d")), out _, out ProtocolError? error));
        Assert.Equal(SqlStates.InvalidAuthorizationSpecification, error!.SqlState);
    }

    [Fact]
    public void Encryption_request_with_a_body_is_invalid()
    {
        Assert.Equal(StartupReadStatus.Invalid, Read(Packet(StartupCodes.SslRequest, [1, 2, 3, 4]), out _, out _));
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        var random = new Random(1234);
        for (int i = 0; i < 20_000; i++)
        {
            var bytes = new byte[random.Next(0, 64)];
            random.NextBytes(bytes);
            if (bytes.Length >= 4 && random.Next(2) == 0)
            {
                BinaryPrimitives.WriteInt32BigEndian(bytes, bytes.Length);
            }

            if (bytes.Length >= 8 && random.Next(2) == 0)
            {
                BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), StartupCodes.Protocol30);
            }

            StartupReadStatus status = Read(bytes, out StartupPacket? packet, out ProtocolError? error);
            Assert.True(status != StartupReadStatus.Complete || packet is not null);
            Assert.True(status != StartupReadStatus.Invalid || error is not null);
        }
    }
}
