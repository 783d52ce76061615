using System.Buffers.Binary;
using System.Text;

namespace PgProxy.Protocol.Startup;

/// <summary>Builds a StartupMessage, for a start-up whose parameters an interceptor changed.</summary>
public static class StartupPacketWriter
{
    public static byte[] Build(int versionCode, IEnumerable<KeyValuePair<string, string>> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        List<KeyValuePair<string, string>> list = [.. parameters];
        int length = 4 + 4 + list.Sum(p => Encoding.UTF8.GetByteCount(p.Key) + 1 + Encoding.UTF8.GetByteCount(p.Value) + 1) + 1;
        var packet = new byte[length];
        BinaryPrimitives.WriteInt32BigEndian(packet, length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), versionCode);
        int offset = 8;
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
