using System.Buffers;
using System.Globalization;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Backend;

/// <summary>Reads and writes CommandComplete ('C'): one String, the command tag (e.g. "SELECT 3", "INSERT 0 1").</summary>
public static class CommandCompleteMessage
{
    /// <summary>Decodes a CommandComplete body; false when the tag is unterminated, followed by more bytes or not valid in <paramref name="encoding"/>.</summary>
    public static bool TryRead(in ReadOnlySequence<byte> body, Encoding encoding, out string tag)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        var reader = new SequenceReader<byte>(body);
        if (!BodyReading.TryReadCString(ref reader, encoding, out tag) || !reader.End)
        {
            tag = string.Empty;
            return false;
        }

        return true;
    }

    /// <summary>Writes a whole CommandComplete.</summary>
    public static void Write(IBufferWriter<byte> output, Encoding encoding, string tag)
    {
        var writer = MessageWriter.Start(output, BackendMessageCode.CommandComplete, WireFormat.CStringSize(tag, encoding));
        writer.WriteCString(tag, encoding);
        writer.Complete();
    }

    /// <summary>The tag of a SELECT that returned <paramref name="rows"/> rows.</summary>
    public static string SelectTag(long rows) => string.Create(CultureInfo.InvariantCulture, $"SELECT {rows}");
}
