using System.Buffers.Binary;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Startup;

/// <summary>Builds a StartupMessage, for a start-up whose parameters an interceptor changed.</summary>
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
}
