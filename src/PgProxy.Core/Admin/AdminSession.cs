using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using PgProxy.Core.Authentication;
using PgProxy.Core.Client;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Sessions;
using PgProxy.Protocol.Authentication;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Admin;

/// <summary>
/// A console session: a client connection with no upstream. PgProxy logs the user in itself (only users of
/// <c>admin.users</c>, against the verifiers of <c>admin.auth-file</c>), reports the parameters a client expects of a
/// server, then answers commands until the client leaves or the session is stopped (KILL, SHUTDOWN, SIGTERM), which
/// the client hears as FATAL 57P01 between two commands, never in the middle of an answer.
/// </summary>
internal sealed class AdminSession(long sessionId, ClientConnection client, SessionEnvironment environment, AdminConsole console, string user)
{
    /// <summary>Answers are sent once this much is written even before a ReadyForQuery: a client reads them as they come.</summary>
    private const int FlushThreshold = 64 * 1024;

    private long bytesFromClient;
    private long bytesToClient;
    private int busy;
    private bool writing;

    /// <summary>True while a command is being answered: SHOW SESSIONS shows the session active then, idle otherwise.</summary>
    public bool Busy => Volatile.Read(ref busy) != 0;

    public long BytesFromClient => Volatile.Read(ref bytesFromClient);

    public long BytesToClient => Volatile.Read(ref bytesToClient);

    /// <summary>Logs in and answers commands; returns why the session ended, for the log (<c>stopped</c> when it was stopped).</summary>
    public async Task<string> RunAsync(StartupPacket startup, CancellationToken stopping)
    {
        ArgumentNullException.ThrowIfNull(startup);
        long started = Stopwatch.GetTimestamp();
        string reason = "client closed";
        bool loggedIn = false;
        try
        {
            if (!console.Allows(user))
            {
                AdminLog.LoginRefused(environment.Logger, sessionId, client.Address, user, "not in admin.users");
                await client.RefuseAsync(new ProtocolError(SqlStates.InvalidAuthorizationSpecification, $"user \"{user}\" may not use the PgProxy console: it is not in admin.users")).ConfigureAwait(false);
                return "refused: not in admin.users";
            }

            ProxyLogin login = await ProxyAuthentication.RunAsync(client.Reader, message => WriteAsync(message, stopping), user, console.VerifierOf(user), "admin.auth-file", stopping).ConfigureAwait(false);
            login.Credential?.Dispose(); // the console has no server to log in to
            if (!login.Succeeded)
            {
                if (login.Refusal is { } refusal)
                {
                    AdminLog.LoginRefused(environment.Logger, sessionId, client.Address, user, $"{login.Reason} ({console.VerifierSource})");
                    await client.RefuseAsync(refusal).ConfigureAwait(false);
                }

                return login.Reason ?? "refused";
            }

            await WriteAsync(Welcome(startup), stopping).ConfigureAwait(false);
            loggedIn = true;
            AdminLog.SessionOpened(environment.Logger, sessionId, client.Address, user);
            reason = await ConverseAsync(stopping).ConfigureAwait(false);
            return reason;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Between two commands (a command's answer is written whole before the next read) the client can take it; a
            // stop in the middle of a write (a client that does not read) would put it inside a message, so none is sent.
            if (!writing)
            {
                await client.TryWriteAsync(ErrorResponseWriter.Build(ErrorSeverity.Fatal, SqlStates.AdminShutdown, "terminating connection due to administrator command")).ConfigureAwait(false);
            }

            reason = "stopped";
            return reason;
        }
        catch (InvalidDataException e)
        {
            await client.TryWriteAsync(ErrorResponseWriter.Build(ErrorSeverity.Fatal, SqlStates.ProtocolViolation, e.Message)).ConfigureAwait(false);
            reason = $"protocol violation: {e.Message}";
            return reason;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            reason = "client closed";
            return reason;
        }
        finally
        {
            if (loggedIn)
            {
                double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                AdminLog.SessionClosed(environment.Logger, sessionId, client.Address, user, seconds, reason);
            }
        }
    }

    private async Task<string> ConverseAsync(CancellationToken stopping)
    {
        var conversation = new ConsoleConversation(new ConsoleExecutor(console.Host, environment.Logger, sessionId, user));
        var output = new ArrayBufferWriter<byte>(4096);
        while (true)
        {
            byte[]? frame = await AuthenticationFrames.ReadAsync(client.Reader, stopping).ConfigureAwait(false);
            if (frame is null)
            {
                stopping.ThrowIfCancellationRequested();
                return "client closed";
            }

            Interlocked.Add(ref bytesFromClient, frame.Length);
            Volatile.Write(ref busy, 1);
            ConversationStep step;
            try
            {
                // Not cut short by a stop: the answer is written whole, and the stop is heard at the next read.
                step = await conversation.HandleAsync(frame[0], new ReadOnlySequence<byte>(frame, MessageHeader.Size, frame.Length - MessageHeader.Size), output, CancellationToken.None).ConfigureAwait(false);
                if (step != ConversationStep.Continue || output.WrittenCount >= FlushThreshold)
                {
                    await WriteAsync(output.WrittenMemory, stopping).ConfigureAwait(false);
                    output.ResetWrittenCount();
                    foreach (Action action in conversation.TakeAfterFlush())
                    {
                        action();
                    }
                }
            }
            finally
            {
                Volatile.Write(ref busy, 0);
            }

            if (step == ConversationStep.Close)
            {
                return frame[0] == (byte)Protocol.FrontendMessageCode.Terminate ? "client terminated" : "protocol violation";
            }
        }
    }

    /// <summary>
    /// What a server sends after AuthenticationOk: the parameters clients read (libpq's server_version and
    /// client_encoding, Npgsql's integer_datetimes, psql's standard_conforming_strings), a BackendKeyData (a cancel
    /// request for it reaches no server: console commands are short), and ReadyForQuery.
    /// </summary>
    private byte[] Welcome(StartupPacket startup)
    {
        var output = new ArrayBufferWriter<byte>(512);
        output.Write(PasswordMessages.AuthenticationOk.Span);
        ParameterStatusMessage.Write(output, "server_version", ConsoleExecutor.ServerVersion);
        ParameterStatusMessage.Write(output, "server_encoding", "UTF8");
        ParameterStatusMessage.Write(output, "client_encoding", "UTF8");
        ParameterStatusMessage.Write(output, "DateStyle", "ISO, MDY");
        ParameterStatusMessage.Write(output, "integer_datetimes", "on");
        ParameterStatusMessage.Write(output, "standard_conforming_strings", "on");
        ParameterStatusMessage.Write(output, "TimeZone", "UTC");
        ParameterStatusMessage.Write(output, "IntervalStyle", "postgres");
        ParameterStatusMessage.Write(output, "is_superuser", "off");
        ParameterStatusMessage.Write(output, "session_authorization", user);
        ParameterStatusMessage.Write(output, "application_name", startup.GetParameter("application_name") ?? string.Empty);
        BackendKeyDataMessage.Write(output, StartupCodes.Protocol30, unchecked((int)sessionId), RandomNumberGenerator.GetBytes(BackendKeyDataMessage.MinSecretKeyLength));
        output.Write(PregeneratedMessages.ReadyForQueryIdle.Span);
        return output.WrittenSpan.ToArray();
    }

    private async Task WriteAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        Interlocked.Add(ref bytesToClient, message.Length);
        writing = true;
        await client.Stream.WriteAsync(message, cancellationToken).ConfigureAwait(false);
        await client.Stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        writing = false;
    }
}
