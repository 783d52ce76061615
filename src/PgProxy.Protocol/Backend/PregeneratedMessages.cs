namespace PgProxy.Protocol.Backend;

/// <summary>Constant messages, built once.</summary>
public static class PregeneratedMessages
{
    /// <summary>The one-byte answer refusing SSLRequest or GSSENCRequest: continue in plain text.</summary>
    public static ReadOnlyMemory<byte> EncryptionRefused { get; } = new[] { (byte)'N' };
}
