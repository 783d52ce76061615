using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Pooling;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
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
        var gate = new TransactionGate(this, pool, link);
        var listens = new ClientListens(() => pools.NotificationsFor(user, database), gate);
        link.Listens = listens;
        SessionHandlers? handlers = null;
        ForwardingPump? frontend = null;
        ForwardingPump? backend = null;
        string reason = "unknown";
        try
        {
            await WelcomeAsync(server, processId, secretKey, cancellationToken).ConfigureAwait(false);

            // The pumps start on the login's connection; the gate points them at each transaction's.
            (frontend, backend, handlers) = CreatePumps(server.Leg, context, startup, user, database, forwardsTerminate: false, link, gate);
            gate.Use(frontend, backend);
            await UnlinkAsync(pool, link, server, reusable: true).ConfigureAwait(false);
            server = null;
            reason = await gate.RunAsync().ConfigureAwait(false);
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
            handlers?.Diversion.Abandon();
            if (server is not null)
            {
                await UnlinkAsync(pool, link, server, reusable: false).ConfigureAwait(false);
            }

            listens.UnlistenAll();
            await gate.EndAsync().ConfigureAwait(false);
            Volatile.Write(ref pooledServer, null);
            RelayEnded(started, frontend, backend, user, database, reason);
        }
    }

    /// <summary>
    /// Transaction pooling's link of one session (see <see cref="ILinkGate"/>): the client-to-server pump runs for the
    /// whole session and takes a connection when the client sends something while it has none; the server-to-client
    /// pump runs once per link and gives the connection back when it is idle and nothing of the client's is being
    /// forwarded. So a transaction costs no stop and restart of a read on the client's side.
    /// </summary>
    private sealed class TransactionGate(ProxySession session, ServerPool<PooledServer> pool, TransactionLink link) : ILinkGate, INotificationTarget
    {
        // More undelivered notifications than this (a client that listens and never reads): the newest are dropped, logged.
        private const int MaxQueuedNotifications = 100_000;

        private readonly Lock gate = new();
        private readonly TaskCompletionSource<PumpStop> serverSideEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private ForwardingPump? frontend;
        private ForwardingPump? backend;
        private PooledServer? linked;
        private bool forwarding;
        private bool unlinkWanted; // the server-to-client pump found the link idle while a batch was being forwarded
        private bool unlinkingByCancel; // the client-to-server pump gave the connection back and cancelled the other's read
        private bool ending; // the session has taken the linked connection back: the pump may no longer give it back itself
        private Task<PumpStop>? backendRun; // the current (or last) link's server-to-client pump, and its unlink
        private readonly Queue<byte[]> notifications = new(); // NotificationResponses waiting for the client to be between transactions
        private Task? delivery; // writing queued notifications to the client, which only happens while no link writes to it
        private bool serverSideWriting; // a link's server-to-client pump may write to the client
        private bool linking; // the client-to-server pump is taking a connection: no delivery starts
        private bool droppedLogged;
        private bool clientClosed; // the client closed its connection (no Terminate): a statement left running is cancelled

        /// <summary>
        /// A notification of a channel the client listens on. It is written to the client between transactions, as
        /// PostgreSQL delivers them: at once when no connection is linked, otherwise once the link ends.
        /// </summary>
        public void Deliver(byte[] frame)
        {
            lock (gate)
            {
                if (ending)
                {
                    return;
                }

                if (notifications.Count >= MaxQueuedNotifications)
                {
                    if (!droppedLogged)
                    {
                        droppedLogged = true;
                        Log.NotificationsDropped(session.environment.Logger, session.Id, MaxQueuedNotifications);
                    }

                    return;
                }

                notifications.Enqueue(frame);
                StartDeliveryLocked();
            }
        }

        private void StartDeliveryLocked()
        {
            if (delivery is null && notifications.Count > 0 && !ending && !linking && !serverSideWriting && linked is null)
            {
                delivery = DeliverQueuedAsync();
            }
        }

        private async Task DeliverQueuedAsync()
        {
            await Task.Yield(); // not on the listening connection's read loop, nor under the lock
            while (true)
            {
                byte[] frame;
                lock (gate)
                {
                    if (notifications.Count == 0 || ending || linking)
                    {
                        delivery = null;
                        return;
                    }

                    frame = notifications.Dequeue();
                }

                await session.client.TryWriteAsync(frame).ConfigureAwait(false);
            }
        }

        public void Use(ForwardingPump frontendPump, ForwardingPump backendPump)
        {
            frontend = frontendPump;
            backend = backendPump;
        }

        public async ValueTask<bool> BeforeForwardAsync(byte firstCode, CancellationToken cancellationToken)
        {
            lock (gate)
            {
                if (linked is not null)
                {
                    forwarding = true;
                    return true;
                }
            }

            if (firstCode == (byte)FrontendMessageCode.Terminate)
            {
                return true; // the pump ends the session on it: no connection for that
            }

            if (backendRun is { } previous)
            {
                // The last link's connection goes back to the pool first (its settings are read back there).
                await previous.ConfigureAwait(false);
            }

            if (serverSideEnded.Task.IsCompleted)
            {
                return false;
            }

            Task? writingNotifications;
            lock (gate)
            {
                linking = true;
                writingNotifications = delivery;
            }

            if (writingNotifications is not null)
            {
                await writingNotifications.ConfigureAwait(false);
            }

            PooledServer? server = await session.LinkAsync(pool, link, cancellationToken).ConfigureAwait(false);
            if (server is null)
            {
                return false;
            }

            frontend!.Retarget(server.Leg);
            backend!.Retarget(server.Leg);
            session.Relinked(server.Leg);
            lock (gate)
            {
                linked = server;
                forwarding = true;
                serverSideWriting = true;
                linking = false;
            }

            backendRun = RunBackendAsync(server);
            return true;
        }

        public void AfterForward()
        {
            PooledServer? stopReading = null;
            lock (gate)
            {
                forwarding = false;
                if (!unlinkWanted)
                {
                    return;
                }

                // The server answered before this batch was done with, and the link was idle then: if the batch asked
                // nothing more of the server, the connection goes back now. Its pump is waiting for the server, so its
                // read is cancelled (only in this race: a cancelled read costs an exception).
                unlinkWanted = false;
                if (ending || linked is null || !IsIdle)
                {
                    return;
                }

                stopReading = linked;
                linked = null;
                unlinkingByCancel = true;
            }

            stopReading.Leg.Reader.CancelPendingRead();
        }

        public ValueTask<bool> TryUnlinkAsync()
        {
            lock (gate)
            {
                if (ending || linked is null || !IsIdle)
                {
                    return ValueTask.FromResult(false);
                }

                if (forwarding)
                {
                    // The client-to-server pump may be waiting for this pump (a metadata query of a handler): go on
                    // reading, and let it give the connection back when its batch is done, if nothing was asked.
                    unlinkWanted = true;
                    return ValueTask.FromResult(false);
                }

                linked = null;
                return ValueTask.FromResult(true);
            }
        }

        /// <summary>Under the lock: nothing outstanding, outside a transaction, no batch open, the client side at a frame boundary.</summary>
        private bool IsIdle => session.state.IsIdle && !session.state.ExtendedBatchOpen && frontend!.AtFrameBoundary;

        /// <summary>Runs the session until the client leaves or either side fails; returns why.</summary>
        public async Task<string> RunAsync()
        {
            Task<PumpStop> frontendRun = frontend!.RunAsync(session.stopping.Token);
            Task firstEnded = await Task.WhenAny(frontendRun, serverSideEnded.Task).ConfigureAwait(false);
            if (firstEnded == frontendRun)
            {
                PumpStop stop = await frontendRun.ConfigureAwait(false);
                switch (stop)
                {
                    case PumpStop.Terminated:
                        return "client terminated";
                    case PumpStop.SourceClosed or PumpStop.SourceFailed:
                        clientClosed = true;
                        return "client closed the connection";
                    case PumpStop.NoServer:
                        return "no server connection for the next transaction";
                    case PumpStop.Cancelled when Current is null:
                        if (Volatile.Read(ref session.shutdownMode) != 0)
                        {
                            await session.client.TryWriteAsync(ErrorResponseWriter.Build(ErrorSeverity.Fatal, RelayEnd.ShuttingDown)).ConfigureAwait(false);
                            return "proxy shutting down";
                        }

                        return "stopped";
                }

                // A bad message from the client, or a server that stopped taking what was sent: said goodbye as the relay does.
                PumpStop backendStop = await StopServerSideAsync().ConfigureAwait(false);
                string ended = await session.FinishAsync(stop, backendStop, frontend, backend!, Current?.Leg.Stream ?? Stream.Null).ConfigureAwait(false);
                if (stop is PumpStop.MessageTooLarge or PumpStop.InvalidMessage)
                {
                    await session.client.DrainAsync().ConfigureAwait(false);
                }

                return ended;
            }

            // The server side ended while linked (the server closed or failed, or a shutdown found the link idle).
            PumpStop serverStop = await serverSideEnded.Task.ConfigureAwait(false);
            session.client.Reader.CancelPendingRead();
            session.stopping.Cancel();
            PumpStop frontendStop = await frontendRun.ConfigureAwait(false);
            return await session.FinishAsync(frontendStop, serverStop, frontend, backend!, Current?.Leg.Stream ?? Stream.Null).ConfigureAwait(false);
        }

        /// <summary>
        /// The session is over: a connection still linked goes back to the pool if the client left it idle and whole
        /// (its pump was only waiting), and is closed otherwise.
        /// </summary>
        public async Task EndAsync()
        {
            PooledServer? server = TakeForEnd();
            Task? writingNotifications;
            lock (gate)
            {
                linked = null;
                writingNotifications = delivery;
            }

            if (writingNotifications is not null)
            {
                await writingNotifications.ConfigureAwait(false);
            }

            if (backendRun is not { } run)
            {
                return;
            }

            bool cancelledHere = false;
            if (server is not null && !run.IsCompleted)
            {
                // A cancel of a read that ended meanwhile would stay pending and end the next reader's first read,
                // another client's: so only a clean Cancelled counts as whole.
                cancelledHere = true;
                server.Leg.Reader.CancelPendingRead();
            }

            PumpStop stop = await run.ConfigureAwait(false);
            if (server is not null)
            {
                bool whole = cancelledHere && stop == PumpStop.Cancelled && frontend!.AtFrameBoundary && backend!.AtFrameBoundary
                    && session.state.IsIdle && !session.state.ExtendedBatchOpen;
                if (clientClosed && !whole)
                {
                    session.CancelAbandonedStatement(server);
                }

                await session.UnlinkAsync(pool, link, server, whole).ConfigureAwait(false);
            }
        }

        private PooledServer? Current
        {
            get
            {
                lock (gate)
                {
                    return linked;
                }
            }
        }

        private async Task<PumpStop> StopServerSideAsync()
        {
            if (backendRun is not { } run)
            {
                return PumpStop.Cancelled;
            }

            if (!run.IsCompleted && TakeForEnd() is { } server)
            {
                server.Leg.Reader.CancelPendingRead();
            }

            return await run.ConfigureAwait(false);
        }

        /// <summary>The connection linked now, if any, which from now on only the session gives back (or closes).</summary>
        private PooledServer? TakeForEnd()
        {
            lock (gate)
            {
                ending = true;
                return linked;
            }
        }

        private async Task<PumpStop> RunBackendAsync(PooledServer server)
        {
            PumpStop stop;
            try
            {
                stop = await backend!.RunAsync(session.stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                stop = PumpStop.SourceFailed;
            }

            bool unlinkedHere;
            lock (gate)
            {
                // Cancelled by the session's stop instead, the cancel asked for may still be pending: not reused then.
                unlinkedHere = stop == PumpStop.Cancelled && unlinkingByCancel && !session.stopping.IsCancellationRequested;
                unlinkingByCancel = false;
            }

            if (stop == PumpStop.Unlinked || unlinkedHere)
            {
                await session.UnlinkAsync(pool, link, server, reusable: true).ConfigureAwait(false);
                lock (gate)
                {
                    // Between transactions: what was notified meanwhile goes to the client now.
                    serverSideWriting = false;
                    StartDeliveryLocked();
                }

                return PumpStop.Unlinked;
            }

            serverSideEnded.TrySetResult(stop);
            return stop;
        }
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

    /// <summary>A client's LISTEN and UNLISTEN, done by the listening connection of its database (made on first use).</summary>
    private sealed class ClientListens(Func<NotificationHub> hubOf, INotificationTarget client) : IClientListens
    {
        private NotificationHub? hub;

        public Task<string?> ListenAsync(IReadOnlyList<string> channels, CancellationToken cancellationToken) =>
            (hub ??= hubOf()).ListenAsync(client, channels, cancellationToken);

        public void Unlisten(string? channel) => hub?.Unlisten(client, channel);

        public void UnlistenAll() => hub?.Unlisten(client, null);
    }
}
