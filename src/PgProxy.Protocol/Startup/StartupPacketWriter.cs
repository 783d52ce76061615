using System.Buffers.Binary;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Startup;

/// <summary>Builds a StartupMessage, for a start-up whose parameters an interceptor changed, and the CancelRequest the admin console sends.</summary>
public static class StartupPacketWriter
{
    /// <summary>A whole StartupMessage: length, version, then name/value Strings ended by one more NUL.</summary>
    public static byte[] Build(int versionCode, IEnumerable<KeyValuePair<string, string>> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        List<KeyValuePair<string, string>> list = [.. parameters];
        int length = StartupCodes.HeaderSize
            + list.Sum(p => WireFormat.CStringSize(p.Key, Encoding.UTF8) + WireFormat.CStringSize(p.Value, Encoding.UTF8))
            + WireFormat.TerminatorSize;
        var packet = new byte[length];
        BinaryPrimitives.WriteInt32BigEndian(packet, length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(WireFormat.Int32Size), versionCode);
        int offset = StartupCodes.HeaderSize;
        foreach (KeyValuePair<string, string> parameter in list)
        {
            offset += Encoding.UTF8.GetBytes(parameter.Key, packet.AsSpan(offset));
            packet[offset++] = 0;
            offset += Encoding.UTF8.GetBytes(parameter.Value, packet.AsSpan(offset));
            packet[offset++] = 0;
        }

        packet[offset] = 0;
        return packet;
    }

    /// <summary>
    /// A whole CancelRequest for the server process <paramref name="processId"/> with its <paramref name="secretKey"/>
    /// (from BackendKeyData), as a client sends it on a connection of its own.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The key is shorter than 4 or longer than 256 bytes.</exception>
    public static byte[] BuildCancelRequest(int processId, ReadOnlySpan<byte> secretKey)
    {
        if (secretKey.Length is < 4 or > StartupCodes.MaxCancelRequestLength - 12)
        {
            throw new ArgumentOutOfRangeException(nameof(secretKey), secretKey.Length, "a cancel key is 4 to 256 bytes");
        }

        int length = StartupCodes.HeaderSize + WireFormat.Int32Size + secretKey.Length;
        var packet = new byte[length];
        BinaryPrimitives.WriteInt32BigEndian(packet, length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(WireFormat.Int32Size), StartupCodes.CancelRequest);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(StartupCodes.HeaderSize), processId);
        secretKey.CopyTo(packet.AsSpan(StartupCodes.HeaderSize + WireFormat.Int32Size));
        return packet;
    }
}
