namespace PgProxy.Protocol.Backend;

/// <summary>Constant messages, built once.</summary>
public static class PregeneratedMessages
{
    /// <summary>ParseComplete: '1' with an empty body.</summary>
    public static ReadOnlyMemory<byte> ParseComplete { get; } = Empty(BackendMessageCode.ParseComplete);

    /// <summary>BindComplete: '2' with an empty body.</summary>
    public static ReadOnlyMemory<byte> BindComplete { get; } = Empty(BackendMessageCode.BindComplete);

    /// <summary>CloseComplete: '3' with an empty body.</summary>
    public static ReadOnlyMemory<byte> CloseComplete { get; } = Empty(BackendMessageCode.CloseComplete);

    /// <summary>NoData: 'n' with an empty body, the answer to a Describe of a statement that returns no rows.</summary>
    public static ReadOnlyMemory<byte> NoData { get; } = Empty(BackendMessageCode.NoData);

    /// <summary>EmptyQueryResponse: 'I' with an empty body, the answer to a query string with no statement.</summary>
    public static ReadOnlyMemory<byte> EmptyQueryResponse { get; } = Empty(BackendMessageCode.EmptyQueryResponse);

    /// <summary>ReadyForQuery 'I': between statements, outside a transaction.</summary>
    public static ReadOnlyMemory<byte> ReadyForQueryIdle { get; } = new byte[] { (byte)BackendMessageCode.ReadyForQuery, 0, 0, 0, 5, (byte)TransactionStatus.Idle };

    /// <summary>The one-byte answer refusing SSLRequest or GSSENCRequest: continue in plain text.</summary>
    public static ReadOnlyMemory<byte> EncryptionRefused { get; } = new[] { (byte)'N' };

    /// <summary>The one-byte answer accepting SSLRequest: a TLS handshake follows.</summary>
    public static ReadOnlyMemory<byte> EncryptionAccepted { get; } = new[] { (byte)'S' };

    private static byte[] Empty(BackendMessageCode code) => [(byte)code, 0, 0, 0, 4];
}
