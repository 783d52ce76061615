namespace PgProxy.Protocol.Startup;

/// <summary>What a start-up packet asks for.</summary>
public enum StartupPacketKind
{
    /// <summary>A StartupMessage: protocol version and parameters.</summary>
    Startup,

    /// <summary>SSLRequest: answered by the proxy, never relayed.</summary>
    SslRequest,

    /// <summary>GSSENCRequest: answered by the proxy, never relayed.</summary>
    GssEncRequest,

    /// <summary>CancelRequest: forwarded to the upstream on a connection of its own.</summary>
    CancelRequest,
}

/// <summary>One start-up packet, kept as the bytes it arrived as so it can be relayed untouched.</summary>
public sealed class StartupPacket
{
    internal StartupPacket(StartupPacketKind kind, int versionCode, byte[] rawBytes, IReadOnlyList<KeyValuePair<string, string>> parameters)
    {
        Kind = kind;
        VersionCode = versionCode;
        RawBytes = rawBytes;
        Parameters = parameters;
    }

    public StartupPacketKind Kind { get; }

    /// <summary>The protocol version (for <see cref="StartupPacketKind.Startup"/>) or request code.</summary>
    public int VersionCode { get; }

    /// <summary>The whole packet, length field included.</summary>
    public byte[] RawBytes { get; }

    /// <summary>Start-up parameters in the order the client sent them; empty for other kinds.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Parameters { get; }

    /// <summary>The value of a start-up parameter, or null.</summary>
    public string? GetParameter(string name)
    {
        foreach (KeyValuePair<string, string> parameter in Parameters)
        {
            if (parameter.Key == name)
            {
                return parameter.Value;
            }
        }

        return null;
    }
}
