using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Authentication;

/// <summary>The request codes an Authentication ('R') message carries in its first four body bytes.</summary>
public static class AuthenticationCodes
{
    public const int Ok = 0;
    public const int CleartextPassword = 3;
    public const int Md5Password = 5;
    public const int Sasl = 10;
    public const int SaslContinue = 11;
    public const int SaslFinal = 12;
}

/// <summary>Reading and writing the messages of SASL authentication: AuthenticationSASL/Continue/Final and the client's 'p' answers.</summary>
public static class SaslMessages
{
    public const string ScramSha256 = "SCRAM-SHA-256";
    public const string ScramSha256Plus = "SCRAM-SHA-256-PLUS";

    /// <summary>The request code of a whole Authentication frame (type byte and length included), or -1 if it is not one.</summary>
    public static int AuthenticationCode(in ReadOnlySequence<byte> frame)
    {
        if (frame.Length < AuthenticationDataOffset || SequenceBytes.First(frame) != (byte)BackendMessageCode.Authentication)
        {
            return -1;
        }

        Span<byte> code = stackalloc byte[WireFormat.Int32Size];
        frame.Slice(MessageHeader.Size, WireFormat.Int32Size).CopyTo(code);
        return BinaryPrimitives.ReadInt32BigEndian(code);
    }

    /// <summary>The mechanisms of an AuthenticationSASL body (after the request code): NUL-terminated names ending with an empty one.</summary>
    /// <exception cref="InvalidDataException">
    /// The list is not terminated. (It was a FormatException, which no caller caught: a server sending such a list ended
    /// the session as a defect, logged with its stack trace, where the relay reports an invalid message during
    /// authentication. Found by the fuzz replay.)
    /// </exception>
    public static List<string> ReadMechanisms(ReadOnlySpan<byte> data)
    {
        var mechanisms = new List<string>();
        while (true)
        {
            int end = data.IndexOf((byte)0);
            if (end < 0)
            {
                throw new InvalidDataException("AuthenticationSASL mechanism list is not terminated");
            }

            if (end == 0)
            {
                return mechanisms;
            }

            mechanisms.Add(Encoding.UTF8.GetString(data[..end]));
            data = data[(end + 1)..];
        }
    }

    /// <summary>A whole AuthenticationSASL message offering <paramref name="mechanisms"/>.</summary>
    public static byte[] BuildAuthenticationSasl(IReadOnlyList<string> mechanisms)
    {
        ArgumentNullException.ThrowIfNull(mechanisms);
        int dataLength = 1;
        foreach (string mechanism in mechanisms)
        {
            dataLength += Encoding.UTF8.GetByteCount(mechanism) + 1;
        }

        byte[] message = StartAuthentication(AuthenticationCodes.Sasl, dataLength, out Span<byte> data);
        foreach (string mechanism in mechanisms)
        {
            int written = Encoding.UTF8.GetBytes(mechanism, data);
            data[written] = 0;
            data = data[(written + 1)..];
        }

        data[0] = 0;
        return message;
    }

    /// <summary>A whole AuthenticationSASLContinue message.</summary>
    public static byte[] BuildAuthenticationSaslContinue(ReadOnlySpan<byte> payload) => BuildWithPayload(AuthenticationCodes.SaslContinue, payload);

    /// <summary>A whole AuthenticationSASLFinal message.</summary>
    public static byte[] BuildAuthenticationSaslFinal(ReadOnlySpan<byte> payload) => BuildWithPayload(AuthenticationCodes.SaslFinal, payload);

    /// <summary>Reads a SASLInitialResponse body: mechanism name, then an Int32 length (-1 for none) and that many bytes.</summary>
    public static bool TryReadInitialResponse(ReadOnlySpan<byte> body, out string mechanism, out byte[] payload)
    {
        mechanism = "";
        payload = [];
        int end = body.IndexOf((byte)0);
        int payloadStart = end + WireFormat.TerminatorSize + WireFormat.Int32Size;
        if (end < 0 || body.Length < payloadStart)
        {
            return false;
        }

        mechanism = Encoding.UTF8.GetString(body[..end]);
        int length = BinaryPrimitives.ReadInt32BigEndian(body[(end + WireFormat.TerminatorSize)..]);
        ReadOnlySpan<byte> rest = body[payloadStart..];
        if (length == WireFormat.NullValueLength && rest.IsEmpty)
        {
            return true;
        }

        if (length < 0 || length != rest.Length)
        {
            return false;
        }

        payload = rest.ToArray();
        return true;
    }

    /// <summary>A whole SASLInitialResponse message.</summary>
    public static byte[] BuildInitialResponse(string mechanism, ReadOnlySpan<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(mechanism);
        int bodyLength = checked(WireFormat.CStringSize(mechanism, Encoding.UTF8) + WireFormat.Int32Size + payload.Length);
        var output = new ArrayBufferWriter<byte>(MessageHeader.Size + bodyLength);
        var message = MessageWriter.Start(output, FrontendMessageCode.Password, bodyLength);
        message.WriteCString(mechanism, Encoding.UTF8);
        message.WriteInt32(payload.Length);
        message.WriteBytes(payload);
        message.Complete();
        return output.WrittenSpan.ToArray();
    }

    /// <summary>A whole SASLResponse message (also the shape of a PasswordMessage, with a NUL-terminated password).</summary>
    public static byte[] BuildResponse(ReadOnlySpan<byte> payload)
    {
        byte[] message = new byte[MessageHeader.Size + payload.Length];
        message[0] = (byte)FrontendMessageCode.Password;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(MessageHeader.CodeSize), MessageHeader.LengthFor(payload.Length));
        payload.CopyTo(message.AsSpan(MessageHeader.Size));
        return message;
    }

    private static byte[] BuildWithPayload(int code, ReadOnlySpan<byte> payload)
    {
        byte[] message = StartAuthentication(code, payload.Length, out Span<byte> data);
        payload.CopyTo(data);
        return message;
    }

    private static byte[] StartAuthentication(int code, int dataLength, out Span<byte> data)
    {
        byte[] message = new byte[AuthenticationDataOffset + dataLength];
        message[0] = (byte)BackendMessageCode.Authentication;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(MessageHeader.CodeSize), message.Length - MessageHeader.CodeSize);
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(MessageHeader.Size), code);
        data = message.AsSpan(AuthenticationDataOffset);
        return message;
    }

    /// <summary>Where an Authentication message's request code ends and its data begins, from the type byte.</summary>
    public const int AuthenticationDataOffset = MessageHeader.Size + WireFormat.Int32Size;
}
