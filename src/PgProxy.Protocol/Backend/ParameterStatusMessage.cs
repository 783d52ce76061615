using System.Buffers;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Backend;

/// <summary>
/// Reads and writes ParameterStatus ('S'): a parameter's name and value, two Strings. Read and written as UTF-8, as
/// PgProxy always has: the names are ASCII, and client_encoding itself arrives here.
/// </summary>
public static class ParameterStatusMessage
{
    /// <summary>Decodes a ParameterStatus body; false unless it is exactly two terminated Strings.</summary>
    public static bool TryRead(in ReadOnlySequence<byte> body, out string name, out string value)
    {
        var reader = new SequenceReader<byte>(body);
        value = string.Empty;
        if (!BodyReading.TryReadCString(ref reader, Encoding.UTF8, out name)
            || !BodyReading.TryReadCString(ref reader, Encoding.UTF8, out value)
            || !reader.End)
        {
            name = value = string.Empty;
            return false;
        }

        return true;
    }

    /// <summary>Writes a whole ParameterStatus.</summary>
    public static void Write(IBufferWriter<byte> output, string name, string value)
    {
        int bodyLength = checked(WireFormat.CStringSize(name, Encoding.UTF8) + WireFormat.CStringSize(value, Encoding.UTF8));
        var writer = MessageWriter.Start(output, BackendMessageCode.ParameterStatus, bodyLength);
        writer.WriteCString(name, Encoding.UTF8);
        writer.WriteCString(value, Encoding.UTF8);
        writer.Complete();
    }
}
