using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using PgProxy.Core.Authentication;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Pooling;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
using PgProxy.Protocol;
using PgProxy.Protocol.Authentication;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Sessions;

/// <summary>
/// A session of a pooling instance (session mode): PgProxy answers the client's login itself against the instance's
/// <c>auth</c>, takes a server connection from the pool of the client's (user, database), sets the client's start-up
/// parameters on it, and relays until the client leaves. The connection then goes back to the pool after the
/// <c>reset-query</c>, if it is idle and whole; otherwise it is closed.
/// </summary>
internal sealed partial class ProxySession
{
    // Start-up parameters that are not settings: who and where, the pool's key.
    private static readonly HashSet<string> NotSettings = new(StringComparer.OrdinalIgnoreCase) { "user", "database" };

    // How many times a session takes another connection when the one lent turns out closed by the server.
    private const int AcquireAttempts = 3;

    private PooledServer? pooledServer; // the connection linked now: a CancelRequest goes there

    private async Task RelayPooledAsync(InstancePools pools, StartupPacket startup, SessionContext? context, string user, string database)
    {
        CancellationToken cancellationToken = stopping.Token;
        if (security.Verifiers is not { } verifiers)
        {
            await client.RefuseAsync(new ProtocolError(SqlStates.InvalidAuthorizationSpecification, $"instance \"{environment.InstanceName}\" pools connections but has no auth section")).ConfigureAwait(false);
            return;
        }

        List<KeyValuePair<string, string>>? startupSettings = StartupSettingsOf(startup, out ProtocolError? unsupported);
        if (unsupported is not null)
        {
            await client.RefuseAsync(unsupported).ConfigureAwait(false);
            return;
        }

        if (startup.VersionCode != StartupCodes.Protocol30)
        {
            // Pooled connections speak 3.0; a client asking for a newer minor version is told so, as PostgreSQL does.
            await client.Stream.WriteAsync(NegotiateProtocolVersion(startup), cancellationToken).ConfigureAwait(false);
        }

        VerifierLookup lookup = await verifiers.FindAsync(user, database, cancellationToken).ConfigureAwait(false);
        ProxyLogin login = await ProxyAuthentication.RunAsync(
            client.Reader, message => client.Stream.WriteAsync(message, cancellationToken).AsTask(), user, lookup.Verifier, verifiers.Description, cancellationToken).ConfigureAwait(false);
        if (!login.Succeeded)
        {
            if (login.Refusal is { } refusal)
            {
                Log.PooledLoginRefused(environment.Logger, Id, client.Address, user, lookup.Failure ?? login.Reason ?? "refused");
                await client.RefuseAsync(refusal).ConfigureAwait(false);
            }

            return;
        }

        ServerPool<PooledServer> pool;
        using (ServerCredential credential = login.Credential!)
        {
            pool = pools.For(user, database, credential);
        }

        if (environment.Instance.Pool.Mode == PoolMode.Transaction)
        {
            await RelayTransactionsAsync(pools, pool, startup, context, user, database, new SessionSettings(startupSettings ?? [])).ConfigureAwait(false);
            return;
        }

        string? settings = SetStatements(startupSettings);
        PooledServer? server = await TakeServerAsync(pool, _ => settings, null, cancellationToken).ConfigureAwait(false);
        if (server is null)
        {
            return;
        }

        (int processId, int secretKey) = pools.RegisterCancelKey(() => Volatile.Read(ref pooledServer));
        Volatile.Write(ref pooledServer, server);
        bool reusable = false;
        long started = RelayStarted(user, database);
        SessionHandlers? handlers = null;
        ForwardingPump? frontend = null;
        ForwardingPump? backend = null;
        string reason = "unknown";
        try
        {
            await WelcomeAsync(server, processId, secretKey, cancellationToken).ConfigureAwait(false);
            (frontend, backend, handlers) = CreatePumps(server.Leg, context, startup, user, database, forwardsTerminate: false);
            (reason, reusable) = await PumpPooledAsync(frontend, backend, server).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            reason = "stopped";
        }
        catch (IOException)
        {
            reason = "upstream connection failed";
        }
        finally
        {
            pools.ReleaseCancelKey(processId);
            Volatile.Write(ref pooledServer, null);
            handlers?.Diversion.Abandon();
            await pool.ReturnAsync(server, reusable).ConfigureAwait(false);
            RelayEnded(started, frontend, backend, user, database, reason);
        }
    }

    /// <summary>
    /// A server connection from the pool with the client's settings applied; null when the client was refused (the pool
    /// timed out, the server could not be reached or refused the login, or refused a setting).
    /// </summary>
    private async Task<PooledServer?> TakeServerAsync(
        ServerPool<PooledServer> pool, Func<PooledServer, string?> settingsFor, Action<PooledServer>? applied, CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            PooledServer server;
            try
            {
                server = await pool.AcquireAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                await client.RefuseAsync(RelayEnd.ShuttingDown).ConfigureAwait(false);
                return null;
            }
            catch (Exception e) when (e is PoolTimeoutException or PoolClosedException)
            {
                await client.RefuseAsync(new ProtocolError(SqlStates.TooManyConnections, e.Message)).ConfigureAwait(false);
                return null;
            }
            catch (UpstreamUnreachableException e)
            {
                Log.UpstreamUnreachable(environment.Logger, Id, environment.Instance.Redirect.Name, e.Message);
                environment.Metrics.UpstreamConnectFailed(environment.InstanceName);
                await client.RefuseAsync(new ProtocolError(SqlStates.SqlClientUnableToEstablishSqlConnection, e.Message)).ConfigureAwait(false);
                return null;
            }
            catch (ServerLoginException e)
            {
                await client.RefuseAsync(e.Error).ConfigureAwait(false);
                return null;
            }
            catch (IOException e)
            {
                await client.RefuseAsync(new ProtocolError(SqlStates.SqlClientUnableToEstablishSqlConnection, $"upstream \"{environment.Instance.Redirect.Name}\": {e.Message}")).ConfigureAwait(false);
                return null;
            }

            if (!await server.StopWatchingAsync().ConfigureAwait(false))
            {
                // Closed by the server while it was idle: another one, a few times, before saying so.
                await pool.ReturnAsync(server, reusable: false).ConfigureAwait(false);
                if (attempt < AcquireAttempts)
                {
                    continue;
                }

                await client.RefuseAsync(new ProtocolError(SqlStates.SqlClientUnableToEstablishSqlConnection, $"upstream \"{environment.Instance.Redirect.Name}\" closed every pooled connection tried")).ConfigureAwait(false);
                return null;
            }

            string? settings = settingsFor(server);
            if (settings is null)
            {
                return server;
            }

            try
            {
                (ProtocolError? error, byte status) = await server.RunAsync(settings, cancellationToken).ConfigureAwait(false);
                if (error is not null || status != (byte)'I')
                {
                    await pool.ReturnAsync(server, reusable: error is not null && status == (byte)'I').ConfigureAwait(false);
                    await client.RefuseAsync(error ?? new ProtocolError(SqlStates.InternalError, "the server was left in a transaction by the start-up parameters")).ConfigureAwait(false);
                    return null;
                }

                applied?.Invoke(server);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                // A connection the server closed just before it was lent fails here first: another one is tried.
                await pool.ReturnAsync(server, reusable: false).ConfigureAwait(false);
                if (e is IOException && attempt < AcquireAttempts)
                {
                    continue;
                }

                await client.RefuseAsync(new ProtocolError(SqlStates.SqlClientUnableToEstablishSqlConnection, $"upstream \"{environment.Instance.Redirect.Name}\" failed while the session's parameters were set")).ConfigureAwait(false);
                return null;
            }

            return server;
        }
    }

    /// <summary>
    /// Runs both pumps until one ends. A client that leaves (Terminate or close) while the server connection is idle
    /// and whole gives it back after the reset query; anything else closes it. Returns why the session ended and
    /// whether the connection may be reused.
    /// </summary>
    private async Task<(string Reason, bool Reusable)> PumpPooledAsync(ForwardingPump frontend, ForwardingPump backend, PooledServer server)
    {
        Task<PumpStop> frontendRun = frontend.RunAsync(stopping.Token);
        Task<PumpStop> backendRun = backend.RunAsync(stopping.Token);
        Task<PumpStop> firstStopped = await Task.WhenAny(frontendRun, backendRun).ConfigureAwait(false);
        bool clientLeft = firstStopped == frontendRun && await frontendRun.ConfigureAwait(false) is PumpStop.Terminated or PumpStop.SourceClosed or PumpStop.SourceFailed;
        if (clientLeft)
        {
            // The server's pump is only waiting: cancelling its read leaves the connection as it was.
            server.Leg.Reader.CancelPendingRead();
            PumpStop backendStop = await backendRun.ConfigureAwait(false);
            bool whole = backendStop == PumpStop.Cancelled && frontend.AtFrameBoundary && backend.AtFrameBoundary && state.IsIdle && !state.ExtendedBatchOpen;
            PumpStop clientStop = await frontendRun.ConfigureAwait(false);
            if (clientStop != PumpStop.Terminated)
            {
                CancelAbandonedStatement(server);
            }

            string reason = clientStop == PumpStop.Terminated ? "client terminated" : "client closed the connection";
            return (reason, whole && await ResetAsync(server).ConfigureAwait(false));
        }

        client.Reader.CancelPendingRead();
        server.Leg.Reader.CancelPendingRead();
        stopping.Cancel();
        PumpStop frontendStop = await frontendRun.ConfigureAwait(false);
        PumpStop backendStop2 = await backendRun.ConfigureAwait(false);
        string ended = await FinishAsync(frontendStop, backendStop2, frontend, backend, server.Leg.Stream).ConfigureAwait(false);
        if (frontendStop is PumpStop.MessageTooLarge or PumpStop.InvalidMessage)
        {
            await client.DrainAsync().ConfigureAwait(false);
        }

        return (ended, false);
    }

    /// <summary>The reset query on a connection going back to the pool; true when it left the connection idle.</summary>
    private async Task<bool> ResetAsync(PooledServer server)
    {
        string resetQuery = environment.Instance.Pool.ResetQuery;
        if (resetQuery.Length == 0)
        {
            return true;
        }

        try
        {
            using var deadline = new CancellationTokenSource(environment.Instance.Limits.ConnectTimeout);
            (ProtocolError? error, byte status) = await server.RunAsync(resetQuery, deadline.Token).ConfigureAwait(false);
            if (error is not null)
            {
                Log.PoolResetFailed(environment.Logger, Id, resetQuery, error.Message);
            }

            return error is null && status == (byte)'I';
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>
    /// The client closed its connection while a statement of its ran on <paramref name="server"/>, which is about to be
    /// closed. PostgreSQL notices a closed connection only when it next reads or writes, so the statement would run
    /// to its end (and keep its locks) for a client that is gone: a CancelRequest with the connection's own key ends
    /// it now, as for a session without pooling. Sent in the background, bounded by connect-timeout.
    /// </summary>
    private void CancelAbandonedStatement(PooledServer server)
    {
        if (state.OutstandingRequests <= 0 || server.BackendKey is not { Length: >= 8 } key)
        {
            return;
        }

        byte[] request = StartupPacketWriter.BuildCancelRequest(BinaryPrimitives.ReadInt32BigEndian(key), key.AsSpan(4));
        server.CancelStarted();
        _ = SendAsync();

        async Task SendAsync()
        {
            try
            {
                await ServerConnection.ForwardCancelAsync(environment, security, loop, Id, request, client.Address).ConfigureAwait(false);
            }
            finally
            {
                server.CancelEnded();
            }
        }
    }

    /// <summary>Where a CancelRequest for this session goes: the server connection linked now, with its own key.</summary>
    private async Task ForwardPooledCancelAsync(InstancePools pools, StartupPacket cancel)
    {
        if (pools.TryFindCancelTarget(cancel) is not (byte[] forServer, PooledServer server))
        {
            Log.CancelFailed(environment.Logger, Id, client.Address, environment.Instance.Redirect.Name, "no pooled session has that key, or it runs nothing now");
            return;
        }

        try
        {
            await ServerConnection.ForwardCancelAsync(environment, security, loop, Id, forServer, client.Address).ConfigureAwait(false);
        }
        finally
        {
            server.CancelEnded();
        }
    }

    /// <summary>The client's start-up settings as one simple Query of SETs, E'' strings whatever standard_conforming_strings says; null when there are none.</summary>
    private static string? SetStatements(List<KeyValuePair<string, string>>? settings)
    {
        if (settings is null or { Count: 0 })
        {
            return null;
        }

        var statements = new StringBuilder();
        foreach ((string name, string value) in settings)
        {
            statements.Append("SET \"").Append(name.Replace("\"", "\"\"", StringComparison.Ordinal)).Append("\" TO ");
            SessionSettings.Literal(statements, value).Append(';');
        }

        return statements.ToString();
    }

    /// <summary>
    /// The client's start-up parameters that are settings, in order; null when there are none. <c>options</c> may carry
    /// <c>-c name=value</c> and <c>--name=value</c>; anything else in it, and <c>replication</c>, cannot be set on a
    /// shared connection and refuse the client.
    /// </summary>
    internal static List<KeyValuePair<string, string>>? StartupSettingsOf(StartupPacket startup, out ProtocolError? unsupported)
    {
        unsupported = null;
        List<KeyValuePair<string, string>>? settings = null;
        foreach ((string name, string value) in startup.Parameters)
        {
            if (name.StartsWith("_pq_.", StringComparison.Ordinal) || NotSettings.Contains(name))
            {
                continue;
            }

            if (name == "replication")
            {
                unsupported = new ProtocolError(SqlStates.FeatureNotSupported, "replication connections cannot go through a pooling PgProxy instance");
                return null;
            }

            if (name == "options")
            {
                foreach (string option in value.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Aggregate(new List<string>(), Pair))
                {
                    int equals = option.IndexOf('=', StringComparison.Ordinal);
                    if (equals <= 0)
                    {
                        unsupported = new ProtocolError(SqlStates.FeatureNotSupported, $"start-up option \"{option}\" cannot be set on a pooled connection: only -c name=value and --name=value can");
                        return null;
                    }

                    (settings ??= []).Add(new(option[..equals].Replace('-', '_'), option[(equals + 1)..]));
                }

                continue;
            }

            (settings ??= []).Add(new(name, value));
        }

        return settings;

        // "-c name=value" comes as two words: keep the setting, drop the flag.
        static List<string> Pair(List<string> options, string word)
        {
            if (word == "-c")
            {
                return options;
            }

            options.Add(word.StartsWith("--", StringComparison.Ordinal) ? word[2..] : word.StartsWith("-c", StringComparison.Ordinal) ? word[2..] : word);
            return options;
        }
    }

    /// <summary>Ends the client's login with <see cref="Welcome"/>, the state then knowing what the client was told.</summary>
    private async Task WelcomeAsync(PooledServer server, int processId, int secretKey, CancellationToken cancellationToken)
    {
        foreach ((string name, string value) in server.Parameters)
        {
            state.OnParameterStatus(new ReadOnlySequence<byte>(ParameterStatusBody(name, value)));
        }

        await client.Stream.WriteAsync(Welcome(server, processId, secretKey), cancellationToken).ConfigureAwait(false);
        state.OnReadyForQuery((byte)'I');
    }

    /// <summary>AuthenticationOk, the server's parameters, the client's own cancel key, and ReadyForQuery: the end of its login.</summary>
    private static byte[] Welcome(PooledServer server, int processId, int secretKey)
    {
        var output = new ArrayBufferWriter<byte>(512);
        output.Write(PasswordMessages.AuthenticationOk.Span);
        foreach ((string name, string value) in server.Parameters)
        {
            byte[] body = ParameterStatusBody(name, value);
            MessageWriter writer = MessageWriter.Start(output, BackendMessageCode.ParameterStatus, body.Length);
            writer.WriteBytes(body);
            writer.Complete();
        }

        Span<byte> secret = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(secret, secretKey);
        BackendKeyDataMessage.Write(output, StartupCodes.Protocol30, processId, secret);
        output.Write(PregeneratedMessages.ReadyForQueryIdle.Span);
        return output.WrittenSpan.ToArray();
    }

    private static byte[] ParameterStatusBody(string name, string value)
    {
        byte[] body = new byte[Encoding.UTF8.GetByteCount(name) + Encoding.UTF8.GetByteCount(value) + 2];
        int written = Encoding.UTF8.GetBytes(name, body);
        written++;
        Encoding.UTF8.GetBytes(value, body.AsSpan(written));
        return body;
    }

    /// <summary>NegotiateProtocolVersion: 3.0, and the <c>_pq_.</c> options the client asked for, none of which are known.</summary>
    private static byte[] NegotiateProtocolVersion(StartupPacket startup)
    {
        string[] options = [.. startup.Parameters.Select(parameter => parameter.Key).Where(name => name.StartsWith("_pq_.", StringComparison.Ordinal))];
        int length = 4 + 4 + 4 + options.Sum(option => Encoding.UTF8.GetByteCount(option) + 1);
        byte[] message = new byte[1 + length];
        message[0] = (byte)BackendMessageCode.NegotiateProtocolVersion;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), length);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(5), 0); // the newest minor version: 3.0
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(9), options.Length);
        int position = 13;
        foreach (string option in options)
        {
            position += Encoding.UTF8.GetBytes(option, message.AsSpan(position)) + 1;
        }

        return message;
    }
}
