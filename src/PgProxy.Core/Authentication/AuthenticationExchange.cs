using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Sessions;
using PgProxy.Core.Server;
using PgProxy.Protocol;
using PgProxy.Protocol.Authentication;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

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
/// How the exchange may open the server connection again in plain text, under <c>redirect.tls.mode: prefer</c>
/// only: <paramref name="ConnectAsync"/> opens a plain TCP connection, <paramref name="StartupPacket"/> is sent on it
/// again, and <paramref name="FirstForInstance"/> says whether this is the instance's first fallback (logged at
/// warning once).
/// </summary>
internal sealed record PlainTextFallback(Func<CancellationToken, Task<Stream>> ConnectAsync, byte[] StartupPacket, Func<bool> FirstForInstance);

/// <summary>
/// The start of authentication for a session with TLS on either leg. Channel binding ties SCRAM to one TLS
/// connection, so it cannot cross the proxy: SCRAM-SHA-256-PLUS is removed from the server's offer (libpq refuses
/// an offer of it on a plain connection, and a TLS client could not bind to the server's connection anyway).
/// <para>
/// A client offered SCRAM-SHA-256 alone answers with the GS2 flag <c>n</c> ("I do not bind") or <c>y</c> ("I could
/// bind, but you cannot"). The exchange reads that answer before the server sees it. <c>n</c>, and <c>y</c> to a
/// server that offered no binding (a plain-text upstream), are relayed untouched. A server that offered binding
/// reads <c>y</c> as a downgrade attack and refuses, so for that client SCRAM is ended here when the instance has an
/// <c>auth</c> section (the client's proof is checked against the user's verifier, the ClientKey it carries is
/// recovered, and the proxy logs in upstream with that key; no password is known or stored). Without one, under
/// <c>prefer</c>, the server connection is opened again in plain text, where <c>y</c> is accepted, and SCRAM is
/// relayed over it; under the modes that require TLS the client is refused naming the setting to add. Every other
/// method (trust, password, md5) is relayed as it comes.
/// </para>
/// </summary>
internal sealed class AuthenticationExchange(
    PipeReader clientReader,
    Stream clientStream,
    UpstreamLeg upstream,
    IVerifierSource? verifiers,
    PlainTextFallback? fallback,
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
            byte[]? frame = await AuthenticationFrames.ReadAsync(upstream.Reader, cancellationToken).ConfigureAwait(false);
            if (frame is null)
            {
                return ExchangeOutcome.Relay; // the pumps see the closed upstream and say so
            }

            if (frame[0] != (byte)BackendMessageCode.Authentication || frame.Length < SaslMessages.AuthenticationDataOffset)
            {
                await ToClientAsync(frame, cancellationToken).ConfigureAwait(false);
                if (frame[0] == (byte)BackendMessageCode.NegotiateProtocolVersion || frame[0] == (byte)BackendMessageCode.NoticeResponse)
                {
                    continue;
                }

                return ExchangeOutcome.Relay;
            }

            int request = BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(MessageHeader.Size));
            if (request != AuthenticationCodes.Sasl)
            {
                await ToClientAsync(frame, cancellationToken).ConfigureAwait(false);
                return ExchangeOutcome.Relay;
            }

            List<string> mechanisms = SaslMessages.ReadMechanisms(frame.AsSpan(SaslMessages.AuthenticationDataOffset));
            bool serverBinds = mechanisms.Remove(SaslMessages.ScramSha256Plus);
            await ToClientAsync(SaslMessages.BuildAuthenticationSasl(mechanisms), cancellationToken).ConfigureAwait(false);
            if (!serverBinds || !mechanisms.Contains(SaslMessages.ScramSha256))
            {
                return ExchangeOutcome.Relay; // whatever the client answers, the server can take it as it is
            }

            return await AnswerClientFirstAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Reads the client's SASLInitialResponse and relays it, ends SCRAM here, or falls back to plain text.</summary>
    private async Task<ExchangeOutcome> AnswerClientFirstAsync(CancellationToken cancellationToken)
    {
        byte[]? initial = await ReadClientResponseAsync(cancellationToken).ConfigureAwait(false);
        if (initial is null)
        {
            return ExchangeOutcome.Closed;
        }

        if (!SaslMessages.TryReadInitialResponse(initial.AsSpan(MessageHeader.Size), out string mechanism, out byte[] payload))
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

        if (clientFirst.ChannelBindingFlag == 'n')
        {
            await upstream.Stream.WriteAsync(initial, cancellationToken).ConfigureAwait(false);
            return ExchangeOutcome.Relay;
        }

        if (verifiers is not null)
        {
            return await TerminateScramAsync(clientFirst, verifiers, cancellationToken).ConfigureAwait(false);
        }

        if (fallback is not null)
        {
            return await FallBackToPlainTextAsync(fallback, initial, cancellationToken).ConfigureAwait(false);
        }

        Log.ScramRefused(identity.Logger, identity.SessionId, identity.User, $"the client offers channel binding, the upstream's TLS (redirect.tls.mode {identity.UpstreamTlsMode}) allows no plain-text fallback, and the instance has no auth section");
        return NeedsAuthSection($"the upstream connection must be TLS (redirect.tls.mode {identity.UpstreamTlsMode})");
    }

    /// <summary>The 28000 that names the setting a client offering channel binding needs when SCRAM cannot be relayed.</summary>
    private ExchangeOutcome NeedsAuthSection(string why) =>
        Refuse(
            SqlStates.InvalidAuthorizationSpecification,
            $"PgProxy cannot relay SCRAM authentication of user \"{identity.User}\": the client offers channel binding, which cannot cross a proxy, and {why}; " +
            $"set auth.auth-file or auth.auth-user for instance \"{identity.Instance}\"");

    /// <summary>
    /// Opens the server connection again in plain text, where a client's <c>y</c> is accepted, and relays SCRAM over
    /// it. The server has not seen the client's first SCRAM message on the TLS connection, which is closed.
    /// </summary>
    private async Task<ExchangeOutcome> FallBackToPlainTextAsync(PlainTextFallback plainText, byte[] initial, CancellationToken cancellationToken)
    {
        Stream stream;
        try
        {
            stream = await plainText.ConnectAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (UpstreamUnreachableException e)
        {
            return Refuse(SqlStates.SqlClientUnableToEstablishSqlConnection, e.Message);
        }

        PipeReader reader = PipeReader.Create(stream, SessionEnvironment.ReaderOptions);
        var candidate = new UpstreamLeg(stream, reader, encrypted: false);
        bool taken = false;
        try
        {
            await stream.WriteAsync(plainText.StartupPacket, cancellationToken).ConfigureAwait(false);
            string? refusal = await AwaitScramOfferAsync(reader, cancellationToken).ConfigureAwait(false);
            if (refusal is not null)
            {
                Log.ScramRefused(identity.Logger, identity.SessionId, identity.User, $"the plain-text fallback failed: {refusal}");
                return NeedsAuthSection($"the server refused a plain-text connection ({refusal})");
            }

            // Closed without a Terminate: a server waiting for a SASL answer logs a Terminate as a protocol violation.
            await upstream.ReplaceAsync(stream, reader, replacementEncrypted: false).ConfigureAwait(false);
            taken = true;
            await stream.WriteAsync(initial, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (!taken)
            {
                await candidate.DisposeAsync().ConfigureAwait(false);
            }
        }

        if (plainText.FirstForInstance())
        {
            Log.PlainTextFallback(identity.Logger, identity.Instance, identity.Upstream);
        }

        Log.PlainTextFallbackUsed(identity.Logger, identity.SessionId, identity.User);
        return ExchangeOutcome.Relay;
    }

    /// <summary>
    /// Reads the plain-text connection's answer to the start-up: null when it asks for SCRAM-SHA-256, otherwise why
    /// the fallback cannot go on (the server's error, or another method the client has not agreed to).
    /// </summary>
    private static async Task<string?> AwaitScramOfferAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            byte[]? frame = await AuthenticationFrames.ReadAsync(reader, cancellationToken).ConfigureAwait(false);
            if (frame is null)
            {
                return "it closed the connection";
            }

            switch ((BackendMessageCode)frame[0])
            {
                case BackendMessageCode.NegotiateProtocolVersion or BackendMessageCode.NoticeResponse:
                    continue; // the client has had these from the first connection already
                case BackendMessageCode.ErrorResponse:
                    string? message = BackendMessages.ReadFields(new ReadOnlySequence<byte>(frame, MessageHeader.Size, frame.Length - MessageHeader.Size), Encoding.UTF8)
                        .FirstOrDefault(field => field.Key == 'M').Value;
                    return message ?? "an error without a message";
                case BackendMessageCode.Authentication when frame.Length >= SaslMessages.AuthenticationDataOffset:
                    int request = BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(MessageHeader.Size));
                    if (request == AuthenticationCodes.Sasl && SaslMessages.ReadMechanisms(frame.AsSpan(SaslMessages.AuthenticationDataOffset)).Contains(SaslMessages.ScramSha256))
                    {
                        return null;
                    }

                    return $"it asks for {MethodName(request)} instead of SCRAM-SHA-256";
                default:
                    return "it answered the start-up unexpectedly";
            }
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

    private static string MethodName(int request) => request switch
    {
        AuthenticationCodes.Ok => "no password (trust)",
        AuthenticationCodes.CleartextPassword => "a cleartext password",
        AuthenticationCodes.Md5Password => "an md5 password",
        AuthenticationCodes.Sasl => "another SASL mechanism",
        _ => $"authentication request {request}",
    };

    private async Task<ExchangeOutcome> TerminateScramAsync(ScramClientFirst clientFirst, IVerifierSource verifiers, CancellationToken cancellationToken)
    {
        // 1. The client's client-first-message has been read, and the server has not seen it. The user's verifier:
        VerifierLookup lookup = await verifiers.FindAsync(identity.User, identity.Database, cancellationToken).ConfigureAwait(false);
        if (lookup.Verifier is null)
        {
            return PasswordFailed(lookup.Failure ?? "no verifier");
        }

        if (!ScramVerifier.TryParse(lookup.Verifier, out ScramVerifier? verifier))
        {
            return PasswordFailed($"the verifier of user \"{identity.User}\" from {verifiers.Description} is not a SCRAM-SHA-256 verifier");
        }

        // 2. Start SCRAM upstream; its salt and iteration count must be the verifier's, or the key will not fit.
        string upstreamNonce = Scram.NewNonce();
        string upstreamBare = $"n=,r={upstreamNonce}";
        await upstream.Stream.WriteAsync(SaslMessages.BuildInitialResponse(SaslMessages.ScramSha256, Encoding.UTF8.GetBytes("n,," + upstreamBare)), cancellationToken).ConfigureAwait(false);
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

        // 3. Our server-first-message to the client, with the verifier's salt and count.
        var serverFirst = new ScramServerFirst(clientFirst.Nonce + Scram.NewNonce(), verifier.Salt, verifier.Iterations);
        string serverFirstText = serverFirst.Text;
        await ToClientAsync(SaslMessages.BuildAuthenticationSaslContinue(Encoding.UTF8.GetBytes(serverFirstText)), cancellationToken).ConfigureAwait(false);

        // 4. The client's proof: check it, and recover its ClientKey.
        byte[]? response = await ReadClientResponseAsync(cancellationToken).ConfigureAwait(false);
        if (response is null)
        {
            return ExchangeOutcome.Closed;
        }

        if (!ScramClientFinal.TryParse(Encoding.UTF8.GetString(response, MessageHeader.Size, response.Length - MessageHeader.Size), out ScramClientFinal? clientFinal))
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

            // 5. Prove the same key upstream.
            string upstreamWithoutProof = $"c={Scram.ChannelBindingOf("n,,")},r={upstreamFirst.Nonce}";
            byte[] upstreamAuthMessage = Scram.AuthMessage(upstreamBare, upstreamFirstText, upstreamWithoutProof);
            string upstreamFinal = $"{upstreamWithoutProof},p={Convert.ToBase64String(Scram.ClientProof(clientKey, upstreamAuthMessage))}";
            await upstream.Stream.WriteAsync(SaslMessages.BuildResponse(Encoding.UTF8.GetBytes(upstreamFinal)), cancellationToken).ConfigureAwait(false);
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

        // 6. Our server signature to the client; the upstream's AuthenticationOk and the rest are relayed.
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
        byte[]? frame = await AuthenticationFrames.ReadAsync(upstream.Reader, cancellationToken).ConfigureAwait(false);
        if (frame is null)
        {
            return (ExchangeOutcome.Relay, null);
        }

        if (frame[0] == (byte)BackendMessageCode.Authentication && frame.Length >= SaslMessages.AuthenticationDataOffset && BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(MessageHeader.Size)) == expected)
        {
            return (null, frame[SaslMessages.AuthenticationDataOffset..]);
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
internal sealed record SessionIdentity(long SessionId, string User, string Database, string Instance, string Upstream, string UpstreamTlsMode, ILogger Logger);
