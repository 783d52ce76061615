namespace PgProxy.Protocol.Backend;

/// <summary>Constant messages, built once.</summary>
public static class PregeneratedMessages
{
    /// <summary>The one-byte answer refusing SSLRequest or GSSENCRequest: continue in plain text.</summary>
    public static ReadOnlyMemory<byte> EncryptionRefused { get; } = new[] { (byte)'N' };

    /// <summary>The one-byte answer accepting SSLRequest: a TLS handshake follows.</summary>
    public static ReadOnlyMemory<byte> EncryptionAccepted { get; } = new[] { (byte)'S' };
}
