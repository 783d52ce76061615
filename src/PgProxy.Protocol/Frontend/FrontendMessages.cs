namespace PgProxy.Protocol.Frontend;

/// <summary>Constant frontend messages, built once.</summary>
public static class FrontendMessages
{
    /// <summary>Terminate: 'X' with length 4. Sent upstream when the proxy ends a session itself.</summary>
    public static ReadOnlyMemory<byte> Terminate { get; } = new byte[] { (byte)FrontendMessageCode.Terminate, 0, 0, 0, 4 };

    /// <summary>Sync: 'S' with length 4. Ends an extended-protocol batch the proxy sends itself.</summary>
    public static ReadOnlyMemory<byte> Sync { get; } = new byte[] { (byte)FrontendMessageCode.Sync, 0, 0, 0, 4 };
}
