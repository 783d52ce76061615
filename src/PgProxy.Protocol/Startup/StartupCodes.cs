namespace PgProxy.Protocol.Startup;

/// <summary>The version codes that open every start-up packet.</summary>
public static class StartupCodes
{
    /// <summary>Protocol 3.0: major 3 in the high 16 bits.</summary>
    public const int Protocol30 = 3 << 16;

    /// <summary>Protocol 3.2 (PostgreSQL 18): longer cancel keys.</summary>
    public const int Protocol32 = (3 << 16) | 2;

    /// <summary>1234.5678: a request to cancel a running query.</summary>
    public const int CancelRequest = (1234 << 16) | 5678;

    /// <summary>1234.5679: a request to switch to TLS.</summary>
    public const int SslRequest = (1234 << 16) | 5679;

    /// <summary>1234.5680: a request to switch to GSSAPI encryption.</summary>
    public const int GssEncRequest = (1234 << 16) | 5680;

    /// <summary>Bytes every start-up packet opens with: its Int32 length (no type byte comes first), then the Int32 version or request code.</summary>
    public const int HeaderSize = Framing.WireFormat.Int32Size + Framing.WireFormat.Int32Size;

    /// <summary>The largest start-up packet PostgreSQL accepts (MAX_STARTUP_PACKET_LENGTH).</summary>
    public const int MaxPacketLength = 10_000;

    /// <summary>Smallest CancelRequest: length, code, process id and a 4-byte key (protocol 3.0).</summary>
    public const int MinCancelRequestLength = 16;

    /// <summary>Largest CancelRequest: protocol 3.2 allows keys of up to 256 bytes.</summary>
    public const int MaxCancelRequestLength = 12 + 256;

    /// <summary>The major number of a version code.</summary>
    public static int Major(int version) => (int)((uint)version >> 16);

    /// <summary>The minor number of a version code.</summary>
    public static int Minor(int version) => version & 0xFFFF;
}
