using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using PgProxy.Core.Authentication;
using PgProxy.Protocol;
using PgProxy.Protocol.Authentication;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Admin;

/// <summary>How a console login ended.</summary>
/// <param name="Refusal">The FATAL error the client gets; null when the login succeeded or the client left.</param>
/// <param name="Reason">Why, for the general log (never the password or proof).</param>
/// <param name="Closed">The client closed or sent something else than an answer.</param>
internal readonly record struct AdminLogin(ProtocolError? Refusal, string? Reason, bool Closed)
{
    public bool Succeeded => Refusal is null && !Closed;
}

/// <summary>
/// The console's own login, PgProxy playing the server: SCRAM-SHA-256 (RFC 5802, as PostgreSQL runs it, without
/// channel binding) for a SCRAM verifier, the md5 challenge for an md5 one. Nothing is relayed and no upstream is
/// asked. A user without a verifier goes through SCRAM against a random one, so a client cannot tell a missing entry
/// from a wrong password, as with PostgreSQL's mock authentication.
/// </summary>
internal static class AdminAuthentication
{
    private const int MockIterations = 4096;

    public static async Task<AdminLogin> RunAsync(PipeReader reader, Func<ReadOnlyMemory<byte>, Task> write, string user, string? verifier, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(write);
        if (PasswordMessages.IsMd5Verifier(verifier))
        {
            return await Md5Async(reader, write, user, verifier!, cancellationToken).ConfigureAwait(false);
        }

        bool known = ScramVerifier.TryParse(verifier, out ScramVerifier? scram);
        return await ScramAsync(reader, write, user, known ? scram! : Mock(), known, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<AdminLogin> Md5Async(PipeReader reader, Func<ReadOnlyMemory<byte>, Task> write, string user, string verifier, CancellationToken cancellationToken)
    {
        byte[] salt = RandomNumberGenerator.GetBytes(PasswordMessages.Md5SaltLength);
        await write(PasswordMessages.BuildMd5Request(salt)).ConfigureAwait(false);
        byte[]? answer = await ReadAnswerAsync(reader, cancellationToken).ConfigureAwait(false);
        if (answer is null)
        {
            return new AdminLogin(null, "closed during authentication", Closed: true);
        }

        if (!PasswordMessages.TryReadPassword(answer.AsSpan(MessageHeader.Size), out string response))
        {
            return Refused(SqlStates.ProtocolViolation, "invalid password packet", "malformed md5 answer");
        }

        return PasswordMessages.Md5Matches(response, PasswordMessages.Md5Response(verifier, salt))
            ? default
            : WrongPassword(user, "the md5 answer does not match the verifier");
    }

    private static async Task<AdminLogin> ScramAsync(PipeReader reader, Func<ReadOnlyMemory<byte>, Task> write, string user, ScramVerifier verifier, bool known, CancellationToken cancellationToken)
    {
        // No -PLUS: channel binding would tie the login to TLS the client may not have; libpq and Npgsql then answer y or n.
        await write(SaslMessages.BuildAuthenticationSasl([SaslMessages.ScramSha256])).ConfigureAwait(false);
        byte[]? initial = await ReadAnswerAsync(reader, cancellationToken).ConfigureAwait(false);
        if (initial is null)
        {
            return new AdminLogin(null, "closed during authentication", Closed: true);
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
            return new AdminLogin(null, "closed during authentication", Closed: true);
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
        try
        {
            if (!Scram.Matches(clientKey, verifier.StoredKey) || !known)
            {
                return WrongPassword(user, known ? "the SCRAM proof does not match the verifier" : "the user has no verifier in admin.auth-file");
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(clientKey);
        }

        string serverFinal = "v=" + Convert.ToBase64String(Scram.ServerSignature(verifier.ServerKey, authMessage));
        await write(SaslMessages.BuildAuthenticationSaslFinal(Encoding.UTF8.GetBytes(serverFinal))).ConfigureAwait(false);
        return default;
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
    private static AdminLogin WrongPassword(string user, string reason) =>
        Refused(SqlStates.InvalidPassword, $"password authentication failed for user \"{user}\"", reason);

    private static AdminLogin Refused(string sqlState, string message, string reason) => new(new ProtocolError(sqlState, message), reason, Closed: false);
}
