using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Pooling;
using PgProxy.Core.Relay;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Sessions;

/// <summary>
/// A session of a transaction-pooling instance: the client holds a server connection from its first message until a
/// ReadyForQuery 'I' answers its last request with nothing more from it pending, then gives it back; its next message
/// takes one again, maybe another. The same two pumps serve every link (see <see cref="ForwardingPump.Retarget"/>),
/// with <see cref="TransactionLink"/>'s handlers mapping prepared statements, and the client's settings are made the
/// connection's at each link.
/// </summary>
internal sealed partial class ProxySession
{
    private async Task RelayTransactionsAsync(
        InstancePools pools, ServerPool<PooledServer> pool, StartupPacket startup, SessionContext? context, string user, string database, SessionSettings startupSettings)
    {
        CancellationToken cancellationToken = stopping.Token;
        var link = new TransactionLink(state, startupSettings, environment.Instance.Pool.PreparedStatements > 0);

        // The login's connection says what the client is told of the server, with the client's own settings applied.
        PooledServer? server = await LinkAsync(pool, link, cancellationToken).ConfigureAwait(false);
        if (server is null)
        {
            return;
        }

        (int processId, int secretKey) = pools.RegisterCancelKey(() => Volatile.Read(ref pooledServer));
        long started = RelayStarted(user, database);
        SessionHandlers? handlers = null;
        ForwardingPump? frontend = null;
        ForwardingPump? backend = null;
        string reason = "unknown";
        bool reusable = false;
        try
        {
            foreach ((string name, string value) in server.Parameters)
            {
                state.OnParameterStatus(new ReadOnlySequence<byte>(ParameterStatusBody(name, value)));
            }

            await client.Stream.WriteAsync(Welcome(server, processId, secretKey), cancellationToken).ConfigureAwait(false);
            state.OnReadyForQuery((byte)'I');
            await UnlinkAsync(pool, link, server, reusable: true).ConfigureAwait(false);
            server = null;
            while (true)
            {
                if (await NextMessageAsync(cancellationToken).ConfigureAwait(false) is { } left)
                {
                    reason = left;
                    break;
                }

                server = await LinkAsync(pool, link, cancellationToken).ConfigureAwait(false);
                if (server is null)
                {
                    reason = "no server connection for the next transaction";
                    break;
                }

                if (frontend is null || backend is null)
                {
                    (frontend, backend, handlers) = CreatePumps(server.Leg, context, startup, user, database, forwardsTerminate: false, link);
                }
                else
                {
                    frontend.Retarget(server.Leg);
                    backend.Retarget(server.Leg);
                    Relinked(server.Leg);
                }

                (string? ended, reusable) = await RelayLinkAsync(frontend, backend, server).ConfigureAwait(false);
                if (ended is not null)
                {
                    reason = ended;
                    break;
                }

                await UnlinkAsync(pool, link, server, reusable: true).ConfigureAwait(false);
                server = null;
            }
        }
        catch (OperationCanceledException)
        {
            reason = "stopped";
            if (server is null && Volatile.Read(ref shutdownMode) != 0)
            {
                await client.TryWriteAsync(ErrorResponseWriter.Build(ErrorSeverity.Fatal, RelayEnd.ShuttingDown)).ConfigureAwait(false);
            }
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
            if (server is not null)
            {
                await UnlinkAsync(pool, link, server, reusable).ConfigureAwait(false);
            }

            RelayEnded(started, frontend, backend, user, database, reason);
        }
    }

    /// <summary>
    /// Waits, unlinked, for the client's next message, leaving it unread for the frontend pump. Returns why the session
    /// ends instead (the client's Terminate or close), or null when a message came.
    /// </summary>
    private async Task<string?> NextMessageAsync(CancellationToken cancellationToken)
    {
        PipeReader reader = client.Reader;
        ReadResult read = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        ReadOnlySequence<byte> buffer = read.Buffer;
        bool terminated = MessageHeader.TryPeek(buffer, out MessageHeader header) && header.Code == (byte)FrontendMessageCode.Terminate;
        bool closed = buffer.IsEmpty && read.IsCompleted;

        // Nothing taken or examined: the pump's read returns the same bytes at once.
        reader.AdvanceTo(buffer.Start);
        if (read.IsCanceled)
        {
            throw new OperationCanceledException(cancellationToken);
        }

        return terminated ? "client terminated" : closed ? "client closed the connection" : null;
    }

    /// <summary>A connection from the pool with the client's settings, linked; null when the client was refused.</summary>
    private async Task<PooledServer?> LinkAsync(ServerPool<PooledServer> pool, TransactionLink link, CancellationToken cancellationToken)
    {
        SessionSettings wanted = link.Wanted;
        PooledServer? server = await TakeServerAsync(
            pool,
            candidate => candidate.LastLink == (Id, wanted.Version) ? null : wanted.ChangesFrom(candidate.Settings),
            applied => applied.Settings.CopyFrom(wanted),
            cancellationToken).ConfigureAwait(false);
        if (server is null)
        {
            return null;
        }

        link.Begin(server);
        parameterReportsAtLink = state.ParameterReports;
        Volatile.Write(ref pooledServer, server);
        return server;
    }

    private long parameterReportsAtLink;

    /// <summary>
    /// Runs the pumps on one link until the connection is idle with nothing of the client's pending (null: unlink), or
    /// the session ends (why, and whether the connection may go back to its pool).
    /// </summary>
    private async Task<(string? Ended, bool Reusable)> RelayLinkAsync(ForwardingPump frontend, ForwardingPump backend, PooledServer server)
    {
        while (true)
        {
            Task<PumpStop> frontendRun = frontend.RunAsync(stopping.Token);
            Task<PumpStop> backendRun = backend.RunAsync(stopping.Token);
            Task<PumpStop> firstStopped = await Task.WhenAny(frontendRun, backendRun).ConfigureAwait(false);
            if (firstStopped == backendRun && await backendRun.ConfigureAwait(false) == PumpStop.Unlinked)
            {
                // Idle after the server's last answer: stop reading the client, then look again, since the client may
                // have sent more meanwhile (then the link goes on).
                client.Reader.CancelPendingRead();
                PumpStop frontendStop = await frontendRun.ConfigureAwait(false);
                bool whole = frontend.AtFrameBoundary && backend.AtFrameBoundary && state.IsIdle && !state.ExtendedBatchOpen;
                if (frontendStop == PumpStop.Cancelled)
                {
                    if (whole)
                    {
                        return (null, true);
                    }

                    continue;
                }

                if (frontendStop is PumpStop.Terminated or PumpStop.SourceClosed or PumpStop.SourceFailed)
                {
                    return (frontendStop == PumpStop.Terminated ? "client terminated" : "client closed the connection", whole);
                }

                string failed = await FinishAsync(frontendStop, PumpStop.Cancelled, frontend, backend, server.Leg.Stream).ConfigureAwait(false);
                await client.DrainAsync().ConfigureAwait(false);
                return (failed, false);
            }

            (string reason, bool reusable) = await EndLinkedAsync(frontendRun, backendRun, firstStopped, frontend, backend, server).ConfigureAwait(false);
            return (reason, reusable);
        }
    }

    /// <summary>The session ends while linked: as in session pooling, the connection goes back only when idle and whole.</summary>
    private async Task<(string Reason, bool Reusable)> EndLinkedAsync(
        Task<PumpStop> frontendRun, Task<PumpStop> backendRun, Task<PumpStop> firstStopped, ForwardingPump frontend, ForwardingPump backend, PooledServer server)
    {
        bool clientLeft = firstStopped == frontendRun && await frontendRun.ConfigureAwait(false) is PumpStop.Terminated or PumpStop.SourceClosed or PumpStop.SourceFailed;
        if (clientLeft)
        {
            // A cancel of a read that has already ended would stay pending on the connection and end the next
            // reader's first read, another client's: cancel only a pump still running, and if it ended on its own
            // meanwhile, the cancel may be pending, so the connection is not reused.
            bool cancelled = !backendRun.IsCompleted;
            if (cancelled)
            {
                server.Leg.Reader.CancelPendingRead();
            }

            PumpStop backendStop = await backendRun.ConfigureAwait(false);
            bool clean = cancelled ? backendStop == PumpStop.Cancelled : backendStop == PumpStop.Unlinked;
            bool whole = clean && frontend.AtFrameBoundary && backend.AtFrameBoundary && state.IsIdle && !state.ExtendedBatchOpen;
            string reason = await frontendRun.ConfigureAwait(false) == PumpStop.Terminated ? "client terminated" : "client closed the connection";
            return (reason, whole);
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

    /// <summary>
    /// Gives the connection back: after any cancel in flight for it has closed, and with what the client set on it
    /// during the link read back into both the client's settings and the connection's.
    /// </summary>
    private async Task UnlinkAsync(ServerPool<PooledServer> pool, TransactionLink link, PooledServer server, bool reusable)
    {
        // Fenced: a CancelRequest counts itself on the connection and then reads the link (see InstancePools).
        Interlocked.Exchange(ref pooledServer, null);
        if (reusable)
        {
            await server.WhenNoCancelsAsync(environment.Instance.Limits.ConnectTimeout).ConfigureAwait(false);
            reusable = await ReadBackSettingsAsync(link, server).ConfigureAwait(false) && await DeallocateSqlPreparedAsync(link, server).ConfigureAwait(false);
        }

        link.End();
        server.LastLink = (Id, link.Wanted.Version);
        await pool.ReturnAsync(server, reusable).ConfigureAwait(false);
    }

    /// <summary>
    /// The settings the client changed during the link: the reported ones from the server's ParameterStatus, the others
    /// read back by name (a SET in a transaction that rolled back leaves the old value, which is what is read).
    /// </summary>
    private async Task<bool> ReadBackSettingsAsync(TransactionLink link, PooledServer server)
    {
        if (state.ParameterReports != parameterReportsAtLink)
        {
            foreach ((string name, string value) in state.Parameters)
            {
                if (!server.Parameters.TryGetValue(name, out string? there) || there != value)
                {
                    server.Parameters[name] = value;
                    link.Wanted.Set(name, value);
                    server.Settings.Set(name, value);
                }
            }
        }

        if (!link.ChangedSettings)
        {
            return true;
        }

        string[] names = link.SettingsToReadBack(server.Settings);
        if (names.Length == 0)
        {
            return true;
        }

        try
        {
            using var deadline = new CancellationTokenSource(environment.Instance.Limits.ConnectTimeout);
            (ProtocolError? error, string?[]? row) = await server.QueryRowAsync(SessionSettings.ReadQuery(names), deadline.Token).ConfigureAwait(false);
            if (error is not null || row is null || row.Length != names.Length)
            {
                Log.PoolSettingsUnread(environment.Logger, Id, error?.Message ?? "no row");
                return false;
            }

            for (int i = 0; i < names.Length; i++)
            {
                link.Wanted.Set(names[i], row[i]);
                server.Settings.Set(names[i], row[i]);
            }

            return true;
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>The SQL-level statements the client prepared in its transaction go with it; false when the connection failed.</summary>
    private async Task<bool> DeallocateSqlPreparedAsync(TransactionLink link, PooledServer server)
    {
        foreach (string name in link.SqlPrepared)
        {
            try
            {
                using var deadline = new CancellationTokenSource(environment.Instance.Limits.ConnectTimeout);

                // One at a time: one that is gone already (the transaction rolled back) must not stop the others.
                (_, byte status) = await server.RunAsync($"DEALLOCATE \"{name.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", deadline.Token).ConfigureAwait(false);
                if (status != (byte)'I')
                {
                    return false;
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                return false;
            }
        }

        return true;
    }
}
