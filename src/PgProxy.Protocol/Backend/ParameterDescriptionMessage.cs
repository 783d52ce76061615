using System.Buffers;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Backend;

/// <summary>Writes ParameterDescription ('t'): an Int16 count, then the type OID of each parameter of a prepared statement.</summary>
public static class ParameterDescriptionMessage
{
    /// <summary>Writes a whole ParameterDescription; an empty span describes a statement without parameters.</summary>
    public static void Write(IBufferWriter<byte> output, ReadOnlySpan<uint> parameterTypes)
    {
        var writer = MessageWriter.Start(output, BackendMessageCode.ParameterDescription, checked(WireFormat.Int16Size + (WireFormat.Int32Size * parameterTypes.Length)));
        writer.WriteInt16(checked((short)parameterTypes.Length));
        foreach (uint type in parameterTypes)
        {
            writer.WriteUInt32(type);
        }

        writer.Complete();
    }
}
