using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Authentication;

/// <summary>
/// The messages of a login that PgProxy answers as the server (the admin console): AuthenticationOk, the md5
/// challenge, and the client's PasswordMessage, with md5's hash as PostgreSQL computes it.
/// </summary>
public static class PasswordMessages
{
    /// <summary>Bytes of the salt of an md5 challenge.</summary>
    public const int Md5SaltLength = 4;

    /// <summary>What an md5 verifier (pg_authid.rolpassword) starts with, before 32 hex digits.</summary>
    public const string Md5Prefix = "md5";

    private static readonly SearchValues<char> LowercaseHex = SearchValues.Create("0123456789abcdef");

    /// <summary>AuthenticationOk: the login succeeded.</summary>
    public static ReadOnlyMemory<byte> AuthenticationOk { get; } = Request(AuthenticationCodes.Ok, []);

    /// <summary>A whole AuthenticationMD5Password message with <paramref name="salt"/>.</summary>
    /// <exception cref="ArgumentException">The salt is not <see cref="Md5SaltLength"/> bytes.</exception>
    public static byte[] BuildMd5Request(ReadOnlySpan<byte> salt)
    {
        if (salt.Length != Md5SaltLength)
        {
            throw new ArgumentException($"an md5 salt is {Md5SaltLength} bytes", nameof(salt));
        }

        return Request(AuthenticationCodes.Md5Password, salt);
    }

    /// <summary>Decodes a PasswordMessage body: one NUL-terminated string, nothing after it.</summary>
    public static bool TryReadPassword(ReadOnlySpan<byte> body, out string password)
    {
        password = string.Empty;
        int end = body.IndexOf((byte)0);
        if (end < 0 || end != body.Length - WireFormat.TerminatorSize)
        {
            return false;
        }

        password = Encoding.UTF8.GetString(body[..end]);
        return true;
    }

    /// <summary>True for an md5 verifier: <c>md5</c> and 32 lowercase hex digits, md5(password || user).</summary>
    public static bool IsMd5Verifier(string? text) =>
        text is { Length: 35 } && text.StartsWith(Md5Prefix, StringComparison.Ordinal) && text.AsSpan(Md5Prefix.Length).IndexOfAnyExcept(LowercaseHex) < 0;

    /// <summary>The md5 verifier PostgreSQL stores for <paramref name="password"/> of <paramref name="user"/>.</summary>
    public static string Md5Verifier(string user, string password)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(password);
        return Md5Prefix + Hex(Encoding.UTF8.GetBytes(password + user));
    }

    /// <summary>
    /// What a client answers an md5 challenge with, given the stored verifier: <c>md5</c> and md5(hex digits of the
    /// verifier || salt). The server compares it with the client's answer; no password is needed on this side.
    /// </summary>
    public static string Md5Response(string verifier, ReadOnlySpan<byte> salt)
    {
        ArgumentNullException.ThrowIfNull(verifier);
        byte[] hex = Encoding.ASCII.GetBytes(verifier[Md5Prefix.Length..]);
        byte[] input = new byte[hex.Length + salt.Length];
        hex.CopyTo(input, 0);
        salt.CopyTo(input.AsSpan(hex.Length));
        return Md5Prefix + Hex(input);
    }

    /// <summary>Constant-time comparison of a client's md5 answer with the expected one.</summary>
    public static bool Md5Matches(string response, string expected)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(expected);
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(response), Encoding.UTF8.GetBytes(expected));
    }

    // md5 is the protocol's own (PostgreSQL's md5 method), not a choice made here.
#pragma warning disable CA5351
    private static string Hex(byte[] input) => Convert.ToHexStringLower(MD5.HashData(input));
#pragma warning restore CA5351

    private static byte[] Request(int code, ReadOnlySpan<byte> data)
    {
        var output = new ArrayBufferWriter<byte>(SaslMessages.AuthenticationDataOffset + data.Length);
        var message = MessageWriter.Start(output, BackendMessageCode.Authentication, WireFormat.Int32Size + data.Length);
        message.WriteInt32(code);
        message.WriteBytes(data);
        message.Complete();
        return output.WrittenSpan.ToArray();
    }
}
