using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PgProxy.Core.Authentication;
using PgProxy.Protocol;
using PgProxy.Protocol.Authentication;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Server;

/// <summary>A server login PgProxy made in a client's name, read to its first ReadyForQuery.</summary>
/// <param name="Parameters">Every ParameterStatus the server sent, by name, last value kept.</param>
/// <param name="BackendKey">The BackendKeyData body (process id and secret key) that cancels this connection's statements.</param>
internal sealed record ServerLoginResult(Dictionary<string, string> Parameters, byte[]? BackendKey);

/// <summary>The server refused a login PgProxy made, or could not be logged in to with what PgProxy knows.</summary>
internal sealed class ServerLoginException(ProtocolError error) : Exception(error.Message)
{
    /// <summary>What the client is told: the server's own error when it sent one.</summary>
    public ProtocolError Error { get; } = error;
}

/// <summary>
/// PgProxy logging in to a server itself, as the client, for a connection it will share (pooling): it sends the
/// start-up packet and answers trust, md5 (with the stored md5 hash) and SCRAM-SHA-256 (with the ClientKey recovered
/// from the client's proof, the key pass-through the TLS legs already use), then reads to ReadyForQuery. No password
/// is known or written. A cleartext request cannot be answered, and says so.
/// </summary>
internal static class ServerLogin
{
    public static async Task<ServerLoginResult> RunAsync(UpstreamLeg leg, byte[] startupPacket, string user, string upstreamName, ServerCredential? credential, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(leg);
        await leg.Stream.WriteAsync(startupPacket, cancellationToken).ConfigureAwait(false);
        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        byte[]? backendKey = null;
        while (true)
        {
            byte[] frame = await NextAsync(leg, upstreamName, cancellationToken).ConfigureAwait(false);
            var body = new ReadOnlySequence<byte>(frame, MessageHeader.Size, frame.Length - MessageHeader.Size);
            switch ((BackendMessageCode)frame[0])
            {
                case BackendMessageCode.Authentication when frame.Length >= SaslMessages.AuthenticationDataOffset:
                    await AnswerAsync(leg, frame, user, upstreamName, credential, cancellationToken).ConfigureAwait(false);
                    break;
                case BackendMessageCode.ParameterStatus:
                    if (BackendMessages.TryReadParameterStatus(body, out string name, out string value))
                    {
                        parameters[name] = value;
                    }

                    break;
                case BackendMessageCode.BackendKeyData:
                    backendKey = body.ToArray();
                    break;
                case BackendMessageCode.ReadyForQuery:
                    leg.MarkLoggedIn();
                    return new ServerLoginResult(parameters, backendKey);
                case BackendMessageCode.ErrorResponse:
                    throw new ServerLoginException(ErrorOf(body));
                case BackendMessageCode.NoticeResponse:
                case BackendMessageCode.NegotiateProtocolVersion:
                    break;
                default:
                    throw Unexpected(upstreamName, $"message '{(char)frame[0]}'");
            }
        }
    }

    /// <summary>The server's error as the client will get it: its SQLSTATE and message.</summary>
    public static ProtocolError ErrorOf(in ReadOnlySequence<byte> body)
    {
        string? code = null;
        string? message = null;
        foreach (KeyValuePair<char, string> field in BackendMessages.ReadFields(body, Encoding.UTF8))
        {
            switch (field.Key)
            {
                case 'C':
                    code = field.Value;
                    break;
                case 'M':
                    message = field.Value;
                    break;
            }
        }

        return new ProtocolError(code ?? SqlStates.InternalError, message ?? "the server refused the login");
    }

    private static async Task AnswerAsync(UpstreamLeg leg, byte[] frame, string user, string upstreamName, ServerCredential? credential, CancellationToken cancellationToken)
    {
        int request = BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(MessageHeader.Size));
        switch (request)
        {
            case AuthenticationCodes.Ok:
                return;
            case AuthenticationCodes.Md5Password when credential?.Md5Verifier is { } md5:
                byte[] salt = frame[SaslMessages.AuthenticationDataOffset..];
                string answer = PasswordMessages.Md5Response(md5, salt);
                await leg.Stream.WriteAsync(SaslMessages.BuildResponse(Encoding.UTF8.GetBytes(answer + "\0")), cancellationToken).ConfigureAwait(false);
                return;
            case AuthenticationCodes.Sasl when credential is { ClientKey: { } clientKey, Verifier: { } verifier }
                && SaslMessages.ReadMechanisms(frame.AsSpan(SaslMessages.AuthenticationDataOffset)).Contains(SaslMessages.ScramSha256):
                await ScramAsync(leg, clientKey, verifier, user, upstreamName, cancellationToken).ConfigureAwait(false);
                return;
            default:
                throw new ServerLoginException(new ProtocolError(
                    SqlStates.InvalidAuthorizationSpecification,
                    $"PgProxy cannot log in to upstream \"{upstreamName}\" as user \"{user}\": the server asks for {MethodName(request)}, " +
                    $"and the client logged in to PgProxy with {(credential is null ? "no password" : credential.ClientKey is not null ? "SCRAM-SHA-256" : "md5")}; " +
                    "give the user the same kind of verifier in auth and on the server"));
        }
    }

    /// <summary>SCRAM-SHA-256 as the client, proving the ClientKey; the server's signature is checked against the verifier's ServerKey.</summary>
    private static async Task ScramAsync(UpstreamLeg leg, byte[] clientKey, ScramVerifier verifier, string user, string upstreamName, CancellationToken cancellationToken)
    {
        string nonce = Scram.NewNonce();
        string bare = $"n=,r={nonce}";
        await leg.Stream.WriteAsync(SaslMessages.BuildInitialResponse(SaslMessages.ScramSha256, Encoding.UTF8.GetBytes("n,," + bare)), cancellationToken).ConfigureAwait(false);
        string serverFirstText = Encoding.UTF8.GetString(await SaslDataAsync(leg, AuthenticationCodes.SaslContinue, upstreamName, cancellationToken).ConfigureAwait(false));
        if (!ScramServerFirst.TryParse(serverFirstText, out ScramServerFirst? serverFirst) || !serverFirst!.Nonce.StartsWith(nonce, StringComparison.Ordinal))
        {
            throw Unexpected(upstreamName, "a malformed SCRAM message");
        }

        // The key fits only the salt and iteration count it was derived with.
        if (serverFirst.Iterations != verifier.Iterations || !serverFirst.Salt.AsSpan().SequenceEqual(verifier.Salt))
        {
            throw new ServerLoginException(new ProtocolError(
                SqlStates.InvalidAuthorizationSpecification,
                $"the SCRAM verifier of user \"{user}\" in auth does not match the server's (salt or iteration count differ): update it from pg_authid"));
        }

        string withoutProof = $"c={Scram.ChannelBindingOf("n,,")},r={serverFirst.Nonce}";
        byte[] authMessage = Scram.AuthMessage(bare, serverFirstText, withoutProof);
        string final = $"{withoutProof},p={Convert.ToBase64String(Scram.ClientProof(clientKey, authMessage))}";
        await leg.Stream.WriteAsync(SaslMessages.BuildResponse(Encoding.UTF8.GetBytes(final)), cancellationToken).ConfigureAwait(false);
        string serverFinal = Encoding.UTF8.GetString(await SaslDataAsync(leg, AuthenticationCodes.SaslFinal, upstreamName, cancellationToken).ConfigureAwait(false));
        if (!Scram.ServerFinalMatches(serverFinal, Scram.ServerSignature(verifier.ServerKey, authMessage)))
        {
            throw Unexpected(upstreamName, "a wrong SCRAM server signature");
        }
    }

    private static async Task<byte[]> SaslDataAsync(UpstreamLeg leg, int expected, string upstreamName, CancellationToken cancellationToken)
    {
        byte[] frame = await NextAsync(leg, upstreamName, cancellationToken).ConfigureAwait(false);
        if (frame[0] == (byte)BackendMessageCode.ErrorResponse)
        {
            throw new ServerLoginException(ErrorOf(new ReadOnlySequence<byte>(frame, MessageHeader.Size, frame.Length - MessageHeader.Size)));
        }

        if (frame[0] != (byte)BackendMessageCode.Authentication || frame.Length < SaslMessages.AuthenticationDataOffset
            || BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(MessageHeader.Size)) != expected)
        {
            throw Unexpected(upstreamName, "an unexpected answer to SCRAM");
        }

        return frame[SaslMessages.AuthenticationDataOffset..];
    }

    private static async Task<byte[]> NextAsync(UpstreamLeg leg, string upstreamName, CancellationToken cancellationToken) =>
        await AuthenticationFrames.ReadAsync(leg.Reader, cancellationToken).ConfigureAwait(false)
            ?? throw new ServerLoginException(new ProtocolError(SqlStates.ConnectionFailure, $"upstream \"{upstreamName}\" closed the connection during the login"));

    private static ServerLoginException Unexpected(string upstreamName, string what) =>
        new(new ProtocolError(SqlStates.SqlClientUnableToEstablishSqlConnection, $"upstream \"{upstreamName}\" sent {what} during the login"));

    private static string MethodName(int request) => request switch
    {
        AuthenticationCodes.CleartextPassword => "a cleartext password, which PgProxy does not know",
        AuthenticationCodes.Md5Password => "an md5 password",
        AuthenticationCodes.Sasl => "SCRAM-SHA-256",
        _ => $"authentication request {request}",
    };
}
