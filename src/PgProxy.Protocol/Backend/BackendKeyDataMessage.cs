using System.Buffers;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Startup;

namespace PgProxy.Protocol.Backend;

/// <summary>
/// Reads and writes BackendKeyData ('K'): the Int32 process id, then the secret key a CancelRequest must repeat. In
/// protocol 3.0 the key is four bytes; from 3.2 on it fills the rest of the message, 4 to 256 bytes.
/// </summary>
public static class BackendKeyDataMessage
{
    /// <summary>The shortest key, and the only length protocol 3.0 (and 3.1) knows.</summary>
    public const int MinSecretKeyLength = 4;

    /// <summary>The longest key protocol 3.2 allows.</summary>
    public const int MaxSecretKeyLength = 256;

    /// <summary>
    /// Decodes a BackendKeyData body for a session on <paramref name="protocolVersion"/> (a <see cref="StartupCodes"/>
    /// version code); false when the key's length is not one that version allows. The key is sliced from the body, not copied.
    /// </summary>
    public static bool TryRead(in ReadOnlySequence<byte> body, int protocolVersion, out int processId, out ReadOnlySequence<byte> secretKey)
    {
        secretKey = default;
        var reader = new SequenceReader<byte>(body);
        if (!reader.TryReadBigEndian(out processId) || !IsValidKeyLength(protocolVersion, reader.Remaining))
        {
            processId = 0;
            return false;
        }

        secretKey = reader.UnreadSequence;
        return true;
    }

    /// <summary>Writes a whole BackendKeyData.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The key's length is not one <paramref name="protocolVersion"/> allows.</exception>
    public static void Write(IBufferWriter<byte> output, int protocolVersion, int processId, ReadOnlySpan<byte> secretKey)
    {
        if (!IsValidKeyLength(protocolVersion, secretKey.Length))
        {
            throw new ArgumentOutOfRangeException(nameof(secretKey), secretKey.Length, "secret key length not allowed by the session's protocol version");
        }

        var writer = MessageWriter.Start(output, BackendMessageCode.BackendKeyData, WireFormat.Int32Size + secretKey.Length);
        writer.WriteInt32(processId);
        writer.WriteBytes(secretKey);
        writer.Complete();
    }

    /// <summary>Whether a key of <paramref name="length"/> bytes is valid on <paramref name="protocolVersion"/>.</summary>
    public static bool IsValidKeyLength(int protocolVersion, long length) =>
        StartupCodes.Major(protocolVersion) == 3 && StartupCodes.Minor(protocolVersion) < 2
            ? length == MinSecretKeyLength
            : length is >= MinSecretKeyLength and <= MaxSecretKeyLength;
}
