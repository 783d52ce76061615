using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Startup;

/// <summary>Outcome of <see cref="StartupPacketReader.TryRead"/>.</summary>
public enum StartupReadStatus
{
    /// <summary>A packet was read and consumed.</summary>
    Complete,

    /// <summary>More bytes are needed; the buffer is unchanged.</summary>
    Incomplete,

    /// <summary>The packet is invalid; the error says why, as PostgreSQL would.</summary>
    Invalid,
}

/// <summary>Reads the length-prefixed packets a client sends before the regular protocol starts.</summary>
public static class StartupPacketReader
{
    /// <summary>
    /// Reads one start-up packet. Its length is checked from the first four bytes, before the rest is awaited,
    /// so an absurd length is refused at once.
    /// </summary>
    public static StartupReadStatus TryRead(ref ReadOnlySequence<byte> buffer, out StartupPacket? packet, out ProtocolError? error)
    {
        packet = null;
        error = null;
        if (buffer.Length < WireFormat.Int32Size)
        {
            return StartupReadStatus.Incomplete;
        }

        Span<byte> lengthBytes = stackalloc byte[WireFormat.Int32Size];
        buffer.Slice(0, WireFormat.Int32Size).CopyTo(lengthBytes);
        int length = BinaryPrimitives.ReadInt32BigEndian(lengthBytes);
        if (length < StartupCodes.HeaderSize || length > StartupCodes.MaxPacketLength)
        {
            error = ProtocolError.InvalidStartupPacketLength;
            return StartupReadStatus.Invalid;
        }

        if (buffer.Length < length)
        {
            return StartupReadStatus.Incomplete;
        }

        byte[] raw = buffer.Slice(0, length).ToArray();
        buffer = buffer.Slice(length);
        int code = BinaryPrimitives.ReadInt32BigEndian(raw.AsSpan(WireFormat.Int32Size));
        switch (code)
        {
            case StartupCodes.SslRequest:
                return Simple(StartupPacketKind.SslRequest, code, raw, length, out packet, out error);
            case StartupCodes.GssEncRequest:
                return Simple(StartupPacketKind.GssEncRequest, code, raw, length, out packet, out error);
            case StartupCodes.CancelRequest:
                if (length < StartupCodes.MinCancelRequestLength || length > StartupCodes.MaxCancelRequestLength)
                {
                    error = new ProtocolError(SqlStates.ProtocolViolation, "invalid length of query cancel packet");
                    return StartupReadStatus.Invalid;
                }

                packet = new StartupPacket(StartupPacketKind.CancelRequest, code, raw, []);
                return StartupReadStatus.Complete;
        }

        int major = StartupCodes.Major(code);
        if (major != 3)
        {
            error = new ProtocolError(
                SqlStates.FeatureNotSupported,
                $"unsupported frontend protocol {major}.{StartupCodes.Minor(code)}: server supports 3.0 to 3.2");
            return StartupReadStatus.Invalid;
        }

        if (!TryParseParameters(raw.AsSpan(StartupCodes.HeaderSize), out List<KeyValuePair<string, string>>? parameters, out error))
        {
            return StartupReadStatus.Invalid;
        }

        if (!parameters.Exists(p => p.Key == "user"))
        {
            error = new ProtocolError(SqlStates.InvalidAuthorizationSpecification, "no PostgreSQL user name specified in startup packet");
            return StartupReadStatus.Invalid;
        }

        packet = new StartupPacket(StartupPacketKind.Startup, code, raw, parameters);
        return StartupReadStatus.Complete;
    }

    private static StartupReadStatus Simple(StartupPacketKind kind, int code, byte[] raw, int length, out StartupPacket? packet, out ProtocolError? error)
    {
        if (length != StartupCodes.HeaderSize)
        {
            packet = null;
            error = ProtocolError.InvalidStartupPacketLength;
            return StartupReadStatus.Invalid;
        }

        packet = new StartupPacket(kind, code, raw, []);
        error = null;
        return StartupReadStatus.Complete;
    }

    /// <summary>Name/value pairs of NUL-terminated strings, ended by one more NUL, as PostgreSQL requires.</summary>
    private static bool TryParseParameters(
        ReadOnlySpan<byte> body,
        [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out List<KeyValuePair<string, string>>? parameters,
        out ProtocolError? error)
    {
        parameters = null;
        error = new ProtocolError(SqlStates.ProtocolViolation, "invalid startup packet layout: expected terminator as last byte");
        if (body.IsEmpty || body[^1] != 0)
        {
            return false;
        }

        var result = new List<KeyValuePair<string, string>>();
        ReadOnlySpan<byte> rest = body;
        while (rest.Length > 0 && rest[0] != 0)
        {
            int nameEnd = rest.IndexOf((byte)0);
            string name = Encoding.UTF8.GetString(rest[..nameEnd]);
            rest = rest[(nameEnd + 1)..];
            int valueEnd = rest.IndexOf((byte)0);
            if (valueEnd < 0)
            {
                return false; // a name without a value
            }

            result.Add(new KeyValuePair<string, string>(name, Encoding.UTF8.GetString(rest[..valueEnd])));
            rest = rest[(valueEnd + 1)..];
        }

        if (rest.Length != 1)
        {
            return false;
        }

        parameters = result;
        error = null;
        return true;
    }
}
