using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace PgProxy.Protocol.Authentication;

/// <summary>
/// A SCRAM-SHA-256 verifier as PostgreSQL stores it in pg_authid.rolpassword:
/// <c>SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey</c>, salt and keys in base64.
/// </summary>
public sealed record ScramVerifier(int Iterations, byte[] Salt, byte[] StoredKey, byte[] ServerKey)
{
    private const string Prefix = "SCRAM-SHA-256$";

    /// <summary>Parses a stored verifier; false for anything else (an md5 hash, a plain password, garbage).</summary>
    public static bool TryParse(string? text, out ScramVerifier? verifier)
    {
        verifier = null;
        if (text is null || !text.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        string[] parts = text[Prefix.Length..].Split('$');
        if (parts.Length != 2)
        {
            return false;
        }

        string[] salted = parts[0].Split(':');
        string[] keys = parts[1].Split(':');
        if (salted.Length != 2 || keys.Length != 2
            || !int.TryParse(salted[0], NumberStyles.None, CultureInfo.InvariantCulture, out int iterations) || iterations < 1
            || !TryBase64(salted[1], out byte[] salt)
            || !TryBase64(keys[0], out byte[] storedKey) || storedKey.Length != Scram.KeyLength
            || !TryBase64(keys[1], out byte[] serverKey) || serverKey.Length != Scram.KeyLength)
        {
            return false;
        }

        verifier = new ScramVerifier(iterations, salt, storedKey, serverKey);
        return true;
    }

    /// <summary>The verifier PostgreSQL would store for <paramref name="password"/> with this salt and iteration count.</summary>
    public static ScramVerifier FromPassword(string password, byte[] salt, int iterations)
    {
        byte[] clientKey = Scram.ClientKeyFromPassword(password, salt, iterations);
        byte[] salted = Scram.SaltedPassword(password, salt, iterations);
        return new ScramVerifier(iterations, salt, SHA256.HashData(clientKey), HMACSHA256.HashData(salted, "Server Key"u8));
    }

    public override string ToString() =>
        $"{Prefix}{Iterations.ToString(CultureInfo.InvariantCulture)}:{Convert.ToBase64String(Salt)}${Convert.ToBase64String(StoredKey)}:{Convert.ToBase64String(ServerKey)}";

    internal static bool TryBase64(string text, out byte[] bytes)
    {
        bytes = [];
        try
        {
            bytes = Convert.FromBase64String(text);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}

/// <summary>
/// client-first-message (RFC 5802): a GS2 header (<c>n,,</c>, <c>y,,</c> or <c>p=type,,</c>) and the bare part
/// <c>n=user,r=nonce</c>. PostgreSQL ignores the user name here (the start-up packet names the user).
/// </summary>
public sealed record ScramClientFirst(char ChannelBindingFlag, string Gs2Header, string Bare, string Nonce)
{
    public static bool TryParse(string text, out ScramClientFirst? message)
    {
        message = null;
        ArgumentNullException.ThrowIfNull(text);

        // gs2-header = gs2-cbind-flag "," [ authzid ] ","
        int first = text.IndexOf(',', StringComparison.Ordinal);
        if (first < 1)
        {
            return false;
        }

        int second = text.IndexOf(',', first + 1);
        if (second < 0)
        {
            return false;
        }

        char flag = text[0];
        if (flag is not ('n' or 'y' or 'p') || (flag != 'p' && first != 1) || second != first + 1)
        {
            // PostgreSQL does not support an authzid either.
            return false;
        }

        string bare = text[(second + 1)..];
        string? nonce = null;
        bool sawUser = false;
        foreach (string attribute in bare.Split(','))
        {
            if (attribute.StartsWith("n=", StringComparison.Ordinal) && !sawUser && nonce is null)
            {
                sawUser = true;
            }
            else if (attribute.StartsWith("r=", StringComparison.Ordinal) && sawUser && nonce is null)
            {
                nonce = attribute[2..];
            }
            else
            {
                // Mandatory extensions (m=) and anything else are not supported, as in PostgreSQL.
                return false;
            }
        }

        if (nonce is null || nonce.Length == 0 || !Scram.IsPrintable(nonce))
        {
            return false;
        }

        message = new ScramClientFirst(flag, text[..(second + 1)], bare, nonce);
        return true;
    }
}

/// <summary>server-first-message: <c>r=nonce,s=salt,i=iterations</c>.</summary>
public sealed record ScramServerFirst(string Nonce, byte[] Salt, int Iterations)
{
    public string Text => $"r={Nonce},s={Convert.ToBase64String(Salt)},i={Iterations.ToString(CultureInfo.InvariantCulture)}";

    public static bool TryParse(string text, out ScramServerFirst? message)
    {
        message = null;
        ArgumentNullException.ThrowIfNull(text);
        string[] parts = text.Split(',');
        if (parts.Length < 3
            || !parts[0].StartsWith("r=", StringComparison.Ordinal)
            || !parts[1].StartsWith("s=", StringComparison.Ordinal)
            || !parts[2].StartsWith("i=", StringComparison.Ordinal)
            || !ScramVerifier.TryBase64(parts[1][2..], out byte[] salt)
            || !int.TryParse(parts[2][2..], NumberStyles.None, CultureInfo.InvariantCulture, out int iterations))
        {
            return false;
        }

        message = new ScramServerFirst(parts[0][2..], salt, iterations);
        return true;
    }
}

/// <summary>client-final-message: <c>c=binding,r=nonce,p=proof</c>; <see cref="WithoutProof"/> is what the AuthMessage covers.</summary>
public sealed record ScramClientFinal(string ChannelBinding, string Nonce, byte[] Proof, string WithoutProof)
{
    public static bool TryParse(string text, out ScramClientFinal? message)
    {
        message = null;
        ArgumentNullException.ThrowIfNull(text);
        int proofAt = text.LastIndexOf(",p=", StringComparison.Ordinal);
        if (proofAt < 0)
        {
            return false;
        }

        string withoutProof = text[..proofAt];
        string[] parts = withoutProof.Split(',');
        if (parts.Length != 2
            || !parts[0].StartsWith("c=", StringComparison.Ordinal)
            || !parts[1].StartsWith("r=", StringComparison.Ordinal)
            || !ScramVerifier.TryBase64(text[(proofAt + 3)..], out byte[] proof)
            || proof.Length != Scram.KeyLength)
        {
            return false;
        }

        message = new ScramClientFinal(parts[0][2..], parts[1][2..], proof, withoutProof);
        return true;
    }
}

/// <summary>The computations of SCRAM-SHA-256 (RFC 5802, RFC 7677).</summary>
public static class Scram
{
    public const int KeyLength = 32;

    /// <summary>A fresh nonce: 18 random bytes in base64, as PostgreSQL makes them.</summary>
    public static string NewNonce() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(18));

    /// <summary>AuthMessage = client-first-message-bare "," server-first-message "," client-final-message-without-proof.</summary>
    public static byte[] AuthMessage(string clientFirstBare, string serverFirst, string clientFinalWithoutProof) =>
        Encoding.UTF8.GetBytes($"{clientFirstBare},{serverFirst},{clientFinalWithoutProof}");

    /// <summary>The channel-binding attribute value (<c>c=</c>) for a GS2 header without binding data.</summary>
    public static string ChannelBindingOf(string gs2Header) => Convert.ToBase64String(Encoding.UTF8.GetBytes(gs2Header));

    /// <summary>ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage).</summary>
    public static byte[] RecoverClientKey(byte[] storedKey, byte[] authMessage, byte[] proof) =>
        Xor(proof, HMACSHA256.HashData(storedKey, authMessage));

    /// <summary>True when <paramref name="clientKey"/> hashes to <paramref name="storedKey"/>: the proof was made with the password.</summary>
    public static bool Matches(byte[] clientKey, byte[] storedKey) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(clientKey), storedKey);

    /// <summary>ClientProof = ClientKey XOR HMAC(H(ClientKey), AuthMessage).</summary>
    public static byte[] ClientProof(byte[] clientKey, byte[] authMessage) =>
        Xor(clientKey, HMACSHA256.HashData(SHA256.HashData(clientKey), authMessage));

    /// <summary>ServerSignature = HMAC(ServerKey, AuthMessage).</summary>
    public static byte[] ServerSignature(byte[] serverKey, byte[] authMessage) => HMACSHA256.HashData(serverKey, authMessage);

    /// <summary>SaltedPassword = Hi(password, salt, i), PBKDF2 with HMAC-SHA-256.</summary>
    public static byte[] SaltedPassword(string password, byte[] salt, int iterations) =>
        Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, KeyLength);

    /// <summary>ClientKey = HMAC(SaltedPassword, "Client Key").</summary>
    public static byte[] ClientKeyFromPassword(string password, byte[] salt, int iterations) =>
        HMACSHA256.HashData(SaltedPassword(password, salt, iterations), "Client Key"u8);

    /// <summary>Constant-time comparison of a received server signature (<c>v=</c> of server-final) with the expected one.</summary>
    public static bool ServerFinalMatches(string serverFinal, byte[] expectedSignature)
    {
        ArgumentNullException.ThrowIfNull(serverFinal);
        return serverFinal.StartsWith("v=", StringComparison.Ordinal)
            && ScramVerifier.TryBase64(serverFinal[2..].Split(',')[0], out byte[] signature)
            && CryptographicOperations.FixedTimeEquals(signature, expectedSignature);
    }

    internal static bool IsPrintable(string value)
    {
        foreach (char c in value)
        {
            if (c is < (char)0x21 or > (char)0x7E || c == ',')
            {
                return false;
            }
        }

        return true;
    }

    private static byte[] Xor(byte[] a, byte[] b)
    {
        if (a.Length != b.Length)
        {
            throw new ArgumentException("SCRAM keys differ in length");
        }

        byte[] result = new byte[a.Length];
        for (int i = 0; i < a.Length; i++)
        {
            result[i] = (byte)(a[i] ^ b[i]);
        }

        return result;
    }
}
