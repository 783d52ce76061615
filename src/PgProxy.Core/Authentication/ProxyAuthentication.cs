using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using PgProxy.Protocol;
using PgProxy.Protocol.Authentication;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Authentication;

/// <summary>
/// What the proxy keeps of a client's login to log in to the server in its name, with no password: the ClientKey a
/// SCRAM proof carries (with the verifier's salt, iteration count and ServerKey, to check the server's answer), or the
/// md5 hash a verifier holds. Zeroed when the server connection that needed it is logged in.
/// </summary>
internal sealed class ServerCredential : IDisposable
{
    private ServerCredential(byte[]? clientKey, ScramVerifier? verifier, string? md5Verifier)
    {
        ClientKey = clientKey;
        Verifier = verifier;
        Md5Verifier = md5Verifier;
    }

    /// <summary>The client's SCRAM ClientKey; null after an md5 login.</summary>
    public byte[]? ClientKey { get; }

    /// <summary>The SCRAM verifier the client was checked against; null after an md5 login.</summary>
    public ScramVerifier? Verifier { get; }

    /// <summary>The md5 verifier (<c>md5</c> and 32 hex digits); null after a SCRAM login.</summary>
    public string? Md5Verifier { get; }

    public static ServerCredential Scram(byte[] clientKey, ScramVerifier verifier) => new(clientKey, verifier, null);

    public static ServerCredential Md5(string verifier) => new(null, null, verifier);

    /// <summary>A copy with its own key bytes, for whoever keeps it longer than the login that produced it.</summary>
    public ServerCredential Copy() => new(ClientKey?.ToArray(), Verifier, Md5Verifier);

    public void Dispose()
    {
        if (ClientKey is not null)
        {
            CryptographicOperations.ZeroMemory(ClientKey);
        }
    }
}

/// <summary>How a login answered by PgProxy itself ended.</summary>
/// <param name="Refusal">The FATAL error the client gets; null when the login succeeded or the client left.</param>
/// <param name="Reason">Why, for the general log (never the password or proof).</param>
/// <param name="Closed">The client closed or sent something else than an answer.</param>
internal readonly record struct ProxyLogin(ProtocolError? Refusal, string? Reason, bool Closed)
{
    public bool Succeeded => Refusal is null && !Closed;

    /// <summary>On success, what logs in to the server in the client's name (the caller disposes it).</summary>
    public ServerCredential? Credential { get; init; }
}

internal static class ProxyAuthentication
{
    private const int MockIterations = 4096;

    /// <param name="reader">The client's messages.</param>
    /// <param name="write">Writes one message to the client.</param>
    /// <param name="user">Who logs in, for the messages.</param>
    /// <param name="verifier">The user's verifier; null when there is none (the login then fails as a wrong password would).</param>
    /// <param name="source">Where verifiers come from, for the reason logged (<c>admin.auth-file</c>, say).</param>
    /// <param name="cancellationToken">Ends the exchange.</param>
    public static async Task<ProxyLogin> RunAsync(PipeReader reader, Func<ReadOnlyMemory<byte>, Task> write, string user, string? verifier, string source, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(write);
        if (PasswordMessages.IsMd5Verifier(verifier))
        {
            return await Md5Async(reader, write, user, verifier!, cancellationToken).ConfigureAwait(false);
        }

        bool known = ScramVerifier.TryParse(verifier, out ScramVerifier? scram);
        return await ScramAsync(reader, write, user, known ? scram! : Mock(), known, source, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<ProxyLogin> Md5Async(PipeReader reader, Func<ReadOnlyMemory<byte>, Task> write, string user, string verifier, CancellationToken cancellationToken)
    {
        byte[] salt = RandomNumberGenerator.GetBytes(PasswordMessages.Md5SaltLength);
        await write(PasswordMessages.BuildMd5Request(salt)).ConfigureAwait(false);
        byte[]? answer = await ReadAnswerAsync(reader, cancellationToken).ConfigureAwait(false);
        if (answer is null)
        {
            return new ProxyLogin(null, "closed during authentication", Closed: true);
        }

        if (!PasswordMessages.TryReadPassword(answer.AsSpan(MessageHeader.Size), out string response))
        {
            return Refused(SqlStates.ProtocolViolation, "invalid password packet", "malformed md5 answer");
        }

        return PasswordMessages.Md5Matches(response, PasswordMessages.Md5Response(verifier, salt))
            ? new ProxyLogin(null, null, Closed: false) { Credential = ServerCredential.Md5(verifier) }
            : WrongPassword(user, "the md5 answer does not match the verifier");
    }

    private static async Task<ProxyLogin> ScramAsync(PipeReader reader, Func<ReadOnlyMemory<byte>, Task> write, string user, ScramVerifier verifier, bool known, string source, CancellationToken cancellationToken)
    {
        // No -PLUS: channel binding would tie the login to TLS the client may not have; libpq and Npgsql then answer y or n.
        await write(SaslMessages.BuildAuthenticationSasl([SaslMessages.ScramSha256])).ConfigureAwait(false);
        byte[]? initial = await ReadAnswerAsync(reader, cancellationToken).ConfigureAwait(false);
        if (initial is null)
        {
            return new ProxyLogin(null, "closed during authentication", Closed: true);
        }

        if (!SaslMessages.TryReadInitialResponse(initial.AsSpan(MessageHeader.Size), out string mechanism, out byte[] payload))
        {
            return Refused(SqlStates.ProtocolViolation, "malformed SASLInitialResponse message", "malformed SASLInitialResponse");
        }

        if (mechanism != SaslMessages.ScramSha256)
        {
            return Refused(SqlStates.InvalidAuthorizationSpecification, "client selected an invalid SASL authentication mechanism", $"mechanism {mechanism}");
        }

        // 'p' asks for binding that was not offered.
        if (!ScramClientFirst.TryParse(Encoding.UTF8.GetString(payload), out ScramClientFirst? clientFirst) || clientFirst!.ChannelBindingFlag == 'p')
        {
            return Refused(SqlStates.ProtocolViolation, "malformed SCRAM message", "malformed client-first-message");
        }

        var serverFirst = new ScramServerFirst(clientFirst.Nonce + Scram.NewNonce(), verifier.Salt, verifier.Iterations);
        string serverFirstText = serverFirst.Text;
        await write(SaslMessages.BuildAuthenticationSaslContinue(Encoding.UTF8.GetBytes(serverFirstText))).ConfigureAwait(false);

        byte[]? response = await ReadAnswerAsync(reader, cancellationToken).ConfigureAwait(false);
        if (response is null)
        {
            return new ProxyLogin(null, "closed during authentication", Closed: true);
        }

        if (!ScramClientFinal.TryParse(Encoding.UTF8.GetString(response, MessageHeader.Size, response.Length - MessageHeader.Size), out ScramClientFinal? clientFinal))
        {
            return Refused(SqlStates.ProtocolViolation, "malformed SCRAM message", "malformed client-final-message");
        }

        if (clientFinal!.ChannelBinding != Scram.ChannelBindingOf(clientFirst.Gs2Header))
        {
            return Refused(SqlStates.ProtocolViolation, "SCRAM channel binding check failed", "channel binding check failed");
        }

        if (clientFinal.Nonce != serverFirst.Nonce)
        {
            return Refused(SqlStates.ProtocolViolation, "SCRAM nonce mismatch", "nonce mismatch");
        }

        byte[] authMessage = Scram.AuthMessage(clientFirst.Bare, serverFirstText, clientFinal.WithoutProof);
        byte[] clientKey = Scram.RecoverClientKey(verifier.StoredKey, authMessage, clientFinal.Proof);
        if (!Scram.Matches(clientKey, verifier.StoredKey) || !known)
        {
            CryptographicOperations.ZeroMemory(clientKey);
            return WrongPassword(user, known ? "the SCRAM proof does not match the verifier" : $"the user has no verifier in {source}");
        }

        string serverFinal = "v=" + Convert.ToBase64String(Scram.ServerSignature(verifier.ServerKey, authMessage));
        await write(SaslMessages.BuildAuthenticationSaslFinal(Encoding.UTF8.GetBytes(serverFinal))).ConfigureAwait(false);
        return new ProxyLogin(null, null, Closed: false) { Credential = ServerCredential.Scram(clientKey, verifier) };
    }

    /// <summary>The client's next 'p' message; null when it closed or sent anything else.</summary>
    private static async Task<byte[]?> ReadAnswerAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        byte[]? frame = await AuthenticationFrames.ReadAsync(reader, cancellationToken).ConfigureAwait(false);
        return frame is not null && frame[0] == (byte)FrontendMessageCode.Password ? frame : null;
    }

    /// <summary>A verifier no password matches, with a fresh salt.</summary>
    private static ScramVerifier Mock() =>
        new(MockIterations, RandomNumberGenerator.GetBytes(16), RandomNumberGenerator.GetBytes(Scram.KeyLength), RandomNumberGenerator.GetBytes(Scram.KeyLength));

    /// <summary>28P01 with PostgreSQL's own words.</summary>
    private static ProxyLogin WrongPassword(string user, string reason) =>
        Refused(SqlStates.InvalidPassword, $"password authentication failed for user \"{user}\"", reason);

    private static ProxyLogin Refused(string sqlState, string message, string reason) => new(new ProtocolError(sqlState, message), reason, Closed: false);
}
