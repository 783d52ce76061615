using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Diagnostics;
using PgProxy.Protocol;
using PgProxy.Protocol.Authentication;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Authentication;

/// <summary>How the authentication exchange ended for the session.</summary>
internal enum ExchangeOutcome
{
    /// <summary>The pumps take over: everything else is relayed untouched.</summary>
    Relay,

    /// <summary>The client is refused with <see cref="AuthenticationExchange.Refusal"/>.</summary>
    Refuse,

    /// <summary>A peer closed during the exchange.</summary>
    Closed,
}

/// <summary>
/// The start of authentication for a session with TLS on either leg. Channel binding ties SCRAM to one TLS
/// connection, so it cannot cross the proxy: SCRAM-SHA-256-PLUS is removed from the server's offer (libpq refuses
/// an offer of it on a plain connection, and a TLS client could not bind to the server's connection anyway). When
/// both legs are encrypted (where PostgreSQL rejects a client that could bind but did not) SCRAM is ended here: the client's proof is checked against the user's verifier, the ClientKey it carries is recovered,
/// and the proxy logs in upstream with that key. No password is known or stored. Every other method (trust,
/// password, md5) is relayed as it comes.
/// </summary>
internal sealed class AuthenticationExchange(
    PipeReader clientReader,
    Stream clientStream,
    PipeReader upstreamReader,
    Stream upstreamStream,
    bool clientEncrypted,
    bool upstreamEncrypted,
    IVerifierSource? verifiers,
    SessionIdentity identity)
{
    /// <summary>Why the client is refused, when <see cref="RunAsync"/> returns <see cref="ExchangeOutcome.Refuse"/>.</summary>
    public ProtocolError? Refusal { get; private set; }

    /// <summary>Bytes the exchange wrote to the client (the server's messages, or the proxy's own SASL ones).</summary>
    public long BytesToClient { get; private set; }

    public async Task<ExchangeOutcome> RunAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            byte[]? frame = await AuthenticationFrames.ReadAsync(upstreamReader, cancellationToken).ConfigureAwait(false);
            if (frame is null)
            {
                return ExchangeOutcome.Relay; // the pumps see the closed upstream and say so
            }

            if (frame[0] != (byte)BackendMessageCode.Authentication || frame.Length < 9)
            {
                await ToClientAsync(frame, cancellationToken).ConfigureAwait(false);
                if (frame[0] == (byte)BackendMessageCode.NegotiateProtocolVersion || frame[0] == (byte)BackendMessageCode.NoticeResponse)
                {
                    continue;
                }

                return ExchangeOutcome.Relay;
            }

            int request = BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(5));
            if (request != AuthenticationCodes.Sasl)
            {
                await ToClientAsync(frame, cancellationToken).ConfigureAwait(false);
                return ExchangeOutcome.Relay;
            }

            List<string> mechanisms = SaslMessages.ReadMechanisms(frame.AsSpan(9));
            if (clientEncrypted && upstreamEncrypted && mechanisms.Contains(SaslMessages.ScramSha256))
            {
                return await TerminateScramAsync(cancellationToken).ConfigureAwait(false);
            }

            mechanisms.Remove(SaslMessages.ScramSha256Plus);
            await ToClientAsync(SaslMessages.BuildAuthenticationSasl(mechanisms), cancellationToken).ConfigureAwait(false);
            return ExchangeOutcome.Relay;
        }
    }

    private ExchangeOutcome Refuse(string sqlState, string message)
    {
        Refusal = new ProtocolError(sqlState, message);
        return ExchangeOutcome.Refuse;
    }

    private ExchangeOutcome PasswordFailed(string reason)
    {
        Log.ScramRefused(identity.Logger, identity.SessionId, identity.User, reason);
        return Refuse(SqlStates.InvalidPassword, $"password authentication failed for user \"{identity.User}\"");
    }

    private async Task<ExchangeOutcome> TerminateScramAsync(CancellationToken cancellationToken)
    {
        if (verifiers is null)
        {
            Log.ScramRefused(identity.Logger, identity.SessionId, identity.User, "TLS on both legs and no auth section");
            return Refuse(
                SqlStates.InvalidAuthorizationSpecification,
                $"PgProxy cannot pass SCRAM authentication of user \"{identity.User}\" through TLS on both legs without the instance's auth section: " +
                $"set auth.auth-file or auth.auth-user for instance \"{identity.Instance}\"");
        }

        // 1. Offer the client SCRAM-SHA-256 without binding, and read its client-first-message.
        await ToClientAsync(SaslMessages.BuildAuthenticationSasl([SaslMessages.ScramSha256]), cancellationToken).ConfigureAwait(false);
        byte[]? initial = await ReadClientResponseAsync(cancellationToken).ConfigureAwait(false);
        if (initial is null)
        {
            return ExchangeOutcome.Closed;
        }

        if (!SaslMessages.TryReadInitialResponse(initial.AsSpan(5), out string mechanism, out byte[] payload))
        {
            return Refuse(SqlStates.ProtocolViolation, "malformed SASLInitialResponse message");
        }

        if (mechanism != SaslMessages.ScramSha256)
        {
            return Refuse(SqlStates.InvalidAuthorizationSpecification, "client selected an invalid SASL authentication mechanism");
        }

        if (!ScramClientFirst.TryParse(Encoding.UTF8.GetString(payload), out ScramClientFirst? clientFirst) || clientFirst!.ChannelBindingFlag == 'p')
        {
            return Refuse(SqlStates.ProtocolViolation, "malformed SCRAM message");
        }

        // 2. The user's verifier.
        VerifierLookup lookup = await verifiers.FindAsync(identity.User, identity.Database, cancellationToken).ConfigureAwait(false);
        if (lookup.Verifier is null)
        {
            return PasswordFailed(lookup.Failure ?? "no verifier");
        }

        if (!ScramVerifier.TryParse(lookup.Verifier, out ScramVerifier? verifier))
        {
            return PasswordFailed($"the verifier of user \"{identity.User}\" from {verifiers.Description} is not a SCRAM-SHA-256 verifier");
        }

        // 3. Start SCRAM upstream; its salt and iteration count must be the verifier's, or the key will not fit.
        string upstreamNonce = Scram.NewNonce();
        string upstreamBare = $"n=,r={upstreamNonce}";
        await upstreamStream.WriteAsync(SaslMessages.BuildInitialResponse(SaslMessages.ScramSha256, Encoding.UTF8.GetBytes("n,," + upstreamBare)), cancellationToken).ConfigureAwait(false);
        (ExchangeOutcome? stop, byte[]? upstreamFirstData) = await ReadUpstreamSaslAsync(AuthenticationCodes.SaslContinue, cancellationToken).ConfigureAwait(false);
        if (stop is { } outcome)
        {
            return outcome;
        }

        string upstreamFirstText = Encoding.UTF8.GetString(upstreamFirstData!);
        if (!ScramServerFirst.TryParse(upstreamFirstText, out ScramServerFirst? upstreamFirst) || !upstreamFirst!.Nonce.StartsWith(upstreamNonce, StringComparison.Ordinal))
        {
            return Refuse(SqlStates.SqlClientUnableToEstablishSqlConnection, $"upstream \"{identity.Upstream}\" sent a malformed SCRAM message");
        }

        if (upstreamFirst.Iterations != verifier!.Iterations || !upstreamFirst.Salt.AsSpan().SequenceEqual(verifier.Salt))
        {
            Log.ScramRefused(identity.Logger, identity.SessionId, identity.User, $"verifier from {verifiers.Description} is out of date");
            return Refuse(
                SqlStates.InvalidAuthorizationSpecification,
                $"the SCRAM verifier of user \"{identity.User}\" in {verifiers.Description} does not match the server's (salt or iteration count differ): update it from pg_authid");
        }

        // 4. Our server-first-message to the client, with the verifier's salt and count.
        var serverFirst = new ScramServerFirst(clientFirst.Nonce + Scram.NewNonce(), verifier.Salt, verifier.Iterations);
        string serverFirstText = serverFirst.Text;
        await ToClientAsync(SaslMessages.BuildAuthenticationSaslContinue(Encoding.UTF8.GetBytes(serverFirstText)), cancellationToken).ConfigureAwait(false);

        // 5. The client's proof: check it, and recover its ClientKey.
        byte[]? response = await ReadClientResponseAsync(cancellationToken).ConfigureAwait(false);
        if (response is null)
        {
            return ExchangeOutcome.Closed;
        }

        if (!ScramClientFinal.TryParse(Encoding.UTF8.GetString(response, 5, response.Length - 5), out ScramClientFinal? clientFinal))
        {
            return Refuse(SqlStates.ProtocolViolation, "malformed SCRAM message");
        }

        if (clientFinal!.ChannelBinding != Scram.ChannelBindingOf(clientFirst.Gs2Header))
        {
            return Refuse(SqlStates.ProtocolViolation, "SCRAM channel binding check failed");
        }

        if (clientFinal.Nonce != serverFirst.Nonce)
        {
            return Refuse(SqlStates.ProtocolViolation, "SCRAM nonce mismatch");
        }

        byte[] authMessage = Scram.AuthMessage(clientFirst.Bare, serverFirstText, clientFinal.WithoutProof);
        byte[] clientKey = Scram.RecoverClientKey(verifier.StoredKey, authMessage, clientFinal.Proof);
        try
        {
            if (!Scram.Matches(clientKey, verifier.StoredKey))
            {
                return PasswordFailed("the client's SCRAM proof does not match the verifier");
            }

            // 6. Prove the same key upstream.
            string upstreamWithoutProof = $"c={Scram.ChannelBindingOf("n,,")},r={upstreamFirst.Nonce}";
            byte[] upstreamAuthMessage = Scram.AuthMessage(upstreamBare, upstreamFirstText, upstreamWithoutProof);
            string upstreamFinal = $"{upstreamWithoutProof},p={Convert.ToBase64String(Scram.ClientProof(clientKey, upstreamAuthMessage))}";
            await upstreamStream.WriteAsync(SaslMessages.BuildResponse(Encoding.UTF8.GetBytes(upstreamFinal)), cancellationToken).ConfigureAwait(false);
            (stop, byte[]? upstreamFinalData) = await ReadUpstreamSaslAsync(AuthenticationCodes.SaslFinal, cancellationToken).ConfigureAwait(false);
            if (stop is { } afterProof)
            {
                return afterProof;
            }

            if (!Scram.ServerFinalMatches(Encoding.UTF8.GetString(upstreamFinalData!), Scram.ServerSignature(verifier.ServerKey, upstreamAuthMessage)))
            {
                return Refuse(SqlStates.SqlClientUnableToEstablishSqlConnection, $"upstream \"{identity.Upstream}\" sent a wrong SCRAM server signature");
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(clientKey);
        }

        // 7. Our server signature to the client; the upstream's AuthenticationOk and the rest are relayed.
        string serverFinal = "v=" + Convert.ToBase64String(Scram.ServerSignature(verifier.ServerKey, authMessage));
        await ToClientAsync(SaslMessages.BuildAuthenticationSaslFinal(Encoding.UTF8.GetBytes(serverFinal)), cancellationToken).ConfigureAwait(false);
        Log.ScramTerminated(identity.Logger, identity.SessionId, identity.User, verifiers.Description);
        return ExchangeOutcome.Relay;
    }

    private ValueTask ToClientAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        BytesToClient += message.Length;
        return clientStream.WriteAsync(message, cancellationToken);
    }

    /// <summary>The client's next 'p' message; null when it closed or sent anything else (Terminate, say).</summary>
    private async Task<byte[]?> ReadClientResponseAsync(CancellationToken cancellationToken)
    {
        byte[]? frame = await AuthenticationFrames.ReadAsync(clientReader, cancellationToken).ConfigureAwait(false);
        return frame is not null && frame[0] == (byte)FrontendMessageCode.Password ? frame : null;
    }

    /// <summary>
    /// The upstream's next Authentication message of <paramref name="expected"/> kind, its data after the code. Anything
    /// else (an ErrorResponse: the password changed, the role is gone) is passed to the client and the pumps take over.
    /// </summary>
    private async Task<(ExchangeOutcome? Stop, byte[]? Data)> ReadUpstreamSaslAsync(int expected, CancellationToken cancellationToken)
    {
        byte[]? frame = await AuthenticationFrames.ReadAsync(upstreamReader, cancellationToken).ConfigureAwait(false);
        if (frame is null)
        {
            return (ExchangeOutcome.Relay, null);
        }

        if (frame[0] == (byte)BackendMessageCode.Authentication && frame.Length >= 9 && BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(5)) == expected)
        {
            return (null, frame[9..]);
        }

        if (frame[0] == (byte)BackendMessageCode.ErrorResponse)
        {
            await ToClientAsync(frame, cancellationToken).ConfigureAwait(false);
            return (ExchangeOutcome.Relay, null);
        }

        return (Refuse(SqlStates.SqlClientUnableToEstablishSqlConnection, $"upstream \"{identity.Upstream}\" answered SCRAM unexpectedly"), null);
    }
}

/// <summary>Who a session is, for the exchange's errors and log lines.</summary>
internal sealed record SessionIdentity(long SessionId, string User, string Database, string Instance, string Upstream, ILogger Logger);
