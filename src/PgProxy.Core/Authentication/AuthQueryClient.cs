using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using PgProxy.Core.Configuration;
using PgProxy.Core.Tls;
using PgProxy.Core.Server;
using PgProxy.Protocol;
using PgProxy.Protocol.Authentication;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Authentication;

/// <summary>auth-query could not run: the message says why (never with a password or SASL content in it).</summary>
internal sealed class AuthQueryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A minimal PostgreSQL client for <c>auth-query</c>: logs in as <c>auth-user</c> (trust, password, md5 or
/// SCRAM-SHA-256 with <c>auth-password</c>), runs the query with the user name as its one text parameter, and
/// returns the last column of the first row. One short connection per lookup; this is the login path, not the
/// relay path.
/// </summary>
internal static class AuthQueryClient
{
    private const int MaxMessageLength = 1 << 20;

    public static async Task<string?> RunAsync(
        AuthConfig config,
        EndpointConfig upstream,
        UpstreamTls tls,
        TimeSpan connectTimeout,
        string database,
        string user,
        CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(connectTimeout);
        string authUser = config.AuthUser!;
        Stream stream;
        try
        {
            // Off the event loops: one short exchange per connection, not on the relay's hot path.
            Stream plain = await UpstreamConnector.ConnectAsync(upstream, connectTimeout, loop: null, deadline.Token).ConfigureAwait(false);
            (stream, _) = await tls.NegotiateAsync(plain, upstream.Host, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is UpstreamUnreachableException or UpstreamTlsException)
        {
            throw new AuthQueryException(e.Message, e);
        }

        await using (stream.ConfigureAwait(false))
        {
            PipeReader reader = PipeReader.Create(stream, new StreamPipeReaderOptions(leaveOpen: true));
            try
            {
                await stream.WriteAsync(StartupPacketWriter.Build(StartupCodes.Protocol30, [new("user", authUser), new("database", database), new("application_name", "pgproxy auth-query")]), deadline.Token).ConfigureAwait(false);
                await LogInAsync(stream, reader, authUser, config.AuthPassword, deadline.Token).ConfigureAwait(false);
                await stream.WriteAsync(ExtendedQuery(config.AuthQuery, user), deadline.Token).ConfigureAwait(false);
                string? verifier = null;
                bool sawRow = false;
                while (true)
                {
                    (byte code, byte[] body) = await ReadAsync(reader, deadline.Token).ConfigureAwait(false);
                    if (code == (byte)BackendMessageCode.DataRow && !sawRow)
                    {
                        sawRow = true;
                        verifier = DataRowMessage.TryReadText(new ReadOnlySequence<byte>(body), Encoding.UTF8, out string?[] values) && values.Length > 0
                            ? values[^1]
                            : throw new AuthQueryException("the server sent a malformed row");
                    }
                    else if (code == (byte)BackendMessageCode.ReadyForQuery)
                    {
                        await stream.WriteAsync(FrontendMessages.Terminate, deadline.Token).ConfigureAwait(false);
                        return verifier;
                    }
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new AuthQueryException($"no answer within {connectTimeout.TotalSeconds:0.###} s");
            }
            catch (IOException e)
            {
                throw new AuthQueryException($"the connection failed: {e.Message}", e);
            }
            finally
            {
                await reader.CompleteAsync().ConfigureAwait(false);
            }
        }
    }

    private static async Task LogInAsync(Stream stream, PipeReader reader, string user, string? password, CancellationToken cancellationToken)
    {
        ScramClient? scram = null;
        while (true)
        {
            (byte code, byte[] body) = await ReadAsync(reader, cancellationToken).ConfigureAwait(false);
            if (code == (byte)BackendMessageCode.ReadyForQuery)
            {
                return;
            }

            if (code != (byte)BackendMessageCode.Authentication)
            {
                continue; // ParameterStatus, BackendKeyData, notices
            }

            int request = BinaryPrimitives.ReadInt32BigEndian(body);
            ReadOnlySpan<byte> data = body.AsSpan(4);
            switch (request)
            {
                case AuthenticationCodes.Ok:
                    break;
                case AuthenticationCodes.CleartextPassword:
                    await stream.WriteAsync(PasswordMessage(Need(password, user)), cancellationToken).ConfigureAwait(false);
                    break;
                case AuthenticationCodes.Md5Password:
                    await stream.WriteAsync(PasswordMessage(Md5(Need(password, user), user, data)), cancellationToken).ConfigureAwait(false);
                    break;
                case AuthenticationCodes.Sasl when SaslMessages.ReadMechanisms(data).Contains(SaslMessages.ScramSha256):
                    scram = new ScramClient(Need(password, user));
                    await stream.WriteAsync(SaslMessages.BuildInitialResponse(SaslMessages.ScramSha256, Encoding.UTF8.GetBytes(scram.ClientFirst)), cancellationToken).ConfigureAwait(false);
                    break;
                case AuthenticationCodes.SaslContinue when scram is not null:
                    string final = scram.ClientFinal(Encoding.UTF8.GetString(data))
                        ?? throw new AuthQueryException("the server's SCRAM message is malformed");
                    await stream.WriteAsync(SaslMessages.BuildResponse(Encoding.UTF8.GetBytes(final)), cancellationToken).ConfigureAwait(false);
                    break;
                case AuthenticationCodes.SaslFinal when scram is not null:
                    if (!scram.ServerFinalValid(Encoding.UTF8.GetString(data)))
                    {
                        throw new AuthQueryException("the server's SCRAM signature is wrong");
                    }

                    break;
                default:
                    throw new AuthQueryException($"authentication request {request} for auth-user \"{user}\" is not supported");
            }
        }
    }

    private static string Need(string? password, string user) =>
        password ?? throw new AuthQueryException($"the server asks a password of auth-user \"{user}\": set auth-password");

    // PostgreSQL's md5 method is MD5 by definition; the server chose it, not us.
#pragma warning disable CA5351
    private static string Md5(string password, string user, ReadOnlySpan<byte> salt)
    {
        string inner = Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(password + user)));
        byte[] outer = [.. Encoding.ASCII.GetBytes(inner), .. salt];
        return "md5" + Convert.ToHexStringLower(MD5.HashData(outer));
    }
#pragma warning restore CA5351

    private static byte[] PasswordMessage(string password) => SaslMessages.BuildResponse([.. Encoding.UTF8.GetBytes(password), 0]);

    /// <summary>Parse, Bind (one text parameter), Execute and Sync, unnamed, in one buffer.</summary>
    private static ReadOnlyMemory<byte> ExtendedQuery(string query, string parameter)
    {
        var message = new ArrayBufferWriter<byte>();
        QueryMessages.WriteParse(message, Encoding.UTF8, string.Empty, query, []);
        QueryMessages.WriteBindUnnamed(message, Encoding.UTF8, [parameter]);
        QueryMessages.WriteExecuteUnnamed(message);
        message.Write(FrontendMessages.Sync.Span);
        return message.WrittenMemory;
    }

    /// <summary>Reads one message (body after the header); an ErrorResponse becomes an exception carrying the server's message.</summary>
    private static async Task<(byte Code, byte[] Body)> ReadAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        byte[] frame;
        try
        {
            frame = await AuthenticationFrames.ReadAsync(reader, cancellationToken, MaxMessageLength).ConfigureAwait(false)
                ?? throw new AuthQueryException("the server closed the connection");
        }
        catch (InvalidDataException e)
        {
            throw new AuthQueryException($"the server sent an {e.Message}", e);
        }

        byte[] body = frame[MessageHeader.Size..];
        if (frame[0] == (byte)BackendMessageCode.ErrorResponse)
        {
            throw new AuthQueryException(ErrorNoticeMessage.TryRead(new ReadOnlySequence<byte>(body), Encoding.UTF8, out ErrorFields fields)
                ? $"the server answered {fields.SqlState} {fields.Message}"
                : "the server sent a malformed error");
        }

        return (frame[0], body);
    }

    /// <summary>SCRAM-SHA-256 from a password, without channel binding (the gs2 header "n,,").</summary>
    private sealed class ScramClient(string password)
    {
        private const string Gs2Header = "n,,";
        private readonly string nonce = Scram.NewNonce();
        private byte[]? expectedServerSignature;

        public string ClientFirst => Gs2Header + Bare;

        private string Bare => $"n=,r={nonce}";

        public string? ClientFinal(string serverFirstText)
        {
            if (!ScramServerFirst.TryParse(serverFirstText, out ScramServerFirst? serverFirst)
                || !serverFirst!.Nonce.StartsWith(nonce, StringComparison.Ordinal))
            {
                return null;
            }

            ScramVerifier keys = ScramVerifier.FromPassword(password, serverFirst.Salt, serverFirst.Iterations);
            byte[] clientKey = Scram.ClientKeyFromPassword(password, serverFirst.Salt, serverFirst.Iterations);
            string withoutProof = $"c={Scram.ChannelBindingOf(Gs2Header)},r={serverFirst.Nonce}";
            byte[] authMessage = Scram.AuthMessage(Bare, serverFirstText, withoutProof);
            expectedServerSignature = Scram.ServerSignature(keys.ServerKey, authMessage);
            string proof = Convert.ToBase64String(Scram.ClientProof(clientKey, authMessage));
            CryptographicOperations.ZeroMemory(clientKey);
            return $"{withoutProof},p={proof}";
        }

        public bool ServerFinalValid(string serverFinal) =>
            expectedServerSignature is not null && Scram.ServerFinalMatches(serverFinal, expectedServerSignature);
    }
}
