using System.Diagnostics;
using System.Net.Sockets;
using PgProxy.Core.Authentication;
using PgProxy.Core.Client;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Statistics;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
using PgProxy.Core.Tls;
using PgProxy.Core.Transport;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Frontend;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Sessions;

/// <summary>
/// One client session, from its first byte to its close: it links a <see cref="ClientConnection"/> (the start-up
/// phase, answered as PostgreSQL would) to a <see cref="ServerConnection"/> (connect, TLS, login), then relays both
/// ways with two <see cref="ForwardingPump"/>s until either side ends. Whatever ends the session, both connections
/// are closed before <see cref="RunAsync"/> returns.
/// </summary>
internal sealed partial class ProxySession : IDisposable
{
    /// <summary>How long a server may take to close its end after the client's Terminate, before the proxy closes it.</summary>
    private static readonly TimeSpan UpstreamCloseGrace = TimeSpan.FromSeconds(1);

    private readonly SessionEnvironment environment;
    private readonly InstanceSecurity security;
    private readonly ClientConnection client;
    private readonly ServerProtocolState state;
    private readonly CancellationTokenSource stopping = new();

    // Both of the session's sockets are on this loop (null: on .NET's socket engine), so a message crosses the proxy
    // on one thread.
    private readonly EventLoop? loop = EventLoops.Next();

    private long authenticationBytesToClient; // what the authentication exchange wrote before the pumps
    private int shutdownMode; // 0 none, 1 at the next idle point, 2 now
    private int relaying;

    public ProxySession(long id, SessionEnvironment environment, Socket clientSocket)
    {
        Id = id;
        this.environment = environment;
        security = environment.Security;
        state = new ServerProtocolState(trackStatements: environment.Pipeline.TracksStatements)
        {
            Responses = environment.Instance.Pool.Mode == Configuration.PoolMode.Transaction ? new Pooling.ResponseSequencer() : null,
        };
        ServerProtocolState server = state;
        client = new ClientConnection(id, clientSocket, loop, environment, security, () => server.WaitingForSyncSince);
    }

    public long Id { get; }

    /// <summary>
    /// Ends the session at its next idle point (between transactions, nothing in flight), telling the client why. With
    /// <paramref name="afterNextRequest"/> (the drain after a hand-over), a session idle now, or still logging in, is
    /// ended only at the idle point that follows its next request, so that it is served once more; one that sends
    /// nothing is ended by <c>shutdown-timeout</c>.
    /// </summary>
    public void RequestShutdown(bool afterNextRequest = false)
    {
        Interlocked.CompareExchange(ref shutdownMode, 1, 0);
        bool idle = state.RequestShutdown(afterNextRequest);

        // Before the relay starts there is no transaction to wait for.
        if (!afterNextRequest && (idle || Volatile.Read(ref relaying) == 0))
        {
            Stop();
        }
    }

    /// <summary>Ends the session now, busy or not, telling the client why when the stream allows it.</summary>
    public void Abort()
    {
        Volatile.Write(ref shutdownMode, 2);
        Stop();
    }

    public void Dispose() => stopping.Dispose();

    private void Stop()
    {
        try
        {
            stopping.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The session ended while the shutdown reached it.
        }
    }

    public async Task RunAsync()
    {
        if (!client.TryOpen())
        {
            return;
        }

        try
        {
            StartupPacket? startup = await client.ReadStartupAsync(ForwardCancelAsync, stopping.Token).ConfigureAwait(false);
            if (startup is not null)
            {
                Identify(startup.GetParameter("user") ?? "", startup.GetParameter("database") ?? startup.GetParameter("user") ?? "", startup.GetParameter("application_name"));
                await (IsForConsole(startup) ? RunConsoleAsync(startup) : RelayAsync(startup)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.SessionFailed(environment.Logger, Id, e);
        }
        finally
        {
            await client.DisposeAsync().ConfigureAwait(false);
        }
    }

    private Task ForwardCancelAsync(StartupPacket cancel) =>
        environment.ConsoleOnly ? Task.CompletedTask
        : environment.Pools is { } pools ? ForwardPooledCancelAsync(pools, cancel)
        : ServerConnection.ForwardCancelAsync(environment, security, loop, Id, cancel, client.Address);

    /// <summary>Runs the start-up interceptors, connects and logs in upstream, then relays both ways until either side ends.</summary>
    private async Task RelayAsync(StartupPacket startup)
    {
        using LoginMeasurement loginTime = environment.Metrics.LoginStarted(environment.InstanceName, state);
        InstanceInterceptors interceptors = environment.Interceptors;
        SessionContext? context = null;
        byte[] startupBytes = startup.RawBytes;
        if (!environment.Pipeline.IsEmpty || interceptors.Connects.Length > 0)
        {
            context = new SessionContext(Id, environment.InstanceName, client.RemoteEndPoint, startup.Parameters, state, environment.InterceptLogger)
            {
                SessionToken = stopping.Token,
                Metrics = environment.Metrics,
            };
            StartupOutcome outcome = await StartupInterception.RunAsync(interceptors, startup, context, stopping.Token).ConfigureAwait(false);
            if (outcome.Refusal is { } refusal)
            {
                await client.RefuseAsync(refusal).ConfigureAwait(false);
                return;
            }

            startupBytes = outcome.Packet;
        }

        string user = context?.User ?? startup.GetParameter("user") ?? "";
        string database = context?.Database ?? startup.GetParameter("database") ?? user;
        Identify(user, database, context?.ApplicationName ?? startup.GetParameter("application_name"));
        if (environment.Pools is not null)
        {
            await RelayPooledAsync(environment.Pools, startup, context, user, database).ConfigureAwait(false);
            return;
        }

        ServerConnection server;
        try
        {
            server = await ServerConnection.ConnectAsync(environment, security, loop, Id, state, stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await client.RefuseAsync(RelayEnd.ShuttingDown).ConfigureAwait(false);
            return;
        }
        catch (UpstreamUnreachableException e)
        {
            Log.UpstreamUnreachable(environment.Logger, Id, environment.Instance.Redirect.Name, e.Message);
            environment.Metrics.UpstreamConnectFailed(environment.InstanceName);
            await client.RefuseAsync(new ProtocolError(SqlStates.SqlClientUnableToEstablishSqlConnection, e.Message)).ConfigureAwait(false);
            return;
        }

        long started = RelayStarted(user, database);
        SessionHandlers? handlers = null;
        ForwardingPump? frontend = null;
        ForwardingPump? backend = null;
        string reason = "unknown";
        try
        {
            (ExchangeOutcome login, ProtocolError? loginRefusal, authenticationBytesToClient) =
                await server.LogInAsync(client, startupBytes, user, database, stopping.Token).ConfigureAwait(false);
            if (login != ExchangeOutcome.Relay)
            {
                // Closed without a Terminate: a server waiting for a password logs a Terminate as a protocol violation.
                if (loginRefusal is not null)
                {
                    await client.RefuseAsync(loginRefusal).ConfigureAwait(false);
                }

                reason = login == ExchangeOutcome.Refuse ? $"refused during authentication: {loginRefusal!.Message}" : "closed during authentication";
                return;
            }

            // The pumps start after the login: the plain-text fallback may have replaced the server connection.
            UpstreamLeg upstream = server.Leg;
            (frontend, backend, handlers) = CreatePumps(upstream, context, startup, user, database, forwardsTerminate: true);
            reason = await PumpAsync(frontend, backend, upstream).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            reason = "stopped";
        }
        catch (IOException)
        {
            reason = "upstream connection failed";
        }
        catch (InvalidDataException e)
        {
            reason = $"invalid message during authentication: {e.Message}";
        }
        finally
        {
            handlers?.Diversion.Abandon();
            await server.DisposeAsync().ConfigureAwait(false);
            RelayEnded(started, frontend, backend, user, database, reason);
        }
    }

    /// <summary>The relay begins: counted, logged, and what <see cref="RequestShutdown"/> waits for from now on. Returns when.</summary>
    private long RelayStarted(string user, string database)
    {
        Volatile.Write(ref relaying, 1);
        environment.Metrics.SessionOpened(environment.InstanceName);
        Log.SessionOpened(environment.Logger, Id, client.Address, user, database, environment.InstanceName);
        return Stopwatch.GetTimestamp();
    }

    /// <summary>The relay that began at <paramref name="started"/> has ended: its duration and bytes counted, its end logged.</summary>
    private void RelayEnded(long started, ForwardingPump? frontend, ForwardingPump? backend, string user, string database, string reason)
    {
        double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        long fromClient = frontend?.BytesForwarded ?? 0;
        long toClient = backend?.BytesForwarded ?? 0;
        environment.Metrics.SessionClosed(environment.InstanceName, seconds, fromClient, toClient);
        environment.Statistics?.ForInstance(environment.InstanceName).SessionEnded(fromClient, toClient);
        string why = EndReason(reason);
        Log.SessionClosed(environment.Logger, Id, client.Address, user, database, seconds, fromClient, toClient, why);
    }

    /// <summary>
    /// The pumps between the client and <paramref name="upstream"/>, with the instance's frame handlers and the statement
    /// timer; the session is then linked (the console sees its server). Without <paramref name="forwardsTerminate"/> the
    /// client's Terminate ends the relay without reaching the server, whose connection goes back to its pool.
    /// </summary>
    private (ForwardingPump Frontend, ForwardingPump Backend, SessionHandlers? Handlers) CreatePumps(
        UpstreamLeg upstream, SessionContext? context, StartupPacket startup, string user, string database, bool forwardsTerminate, Pooling.TransactionLink? transactions = null, ILinkGate? linkGate = null)
    {
        ProxyMetrics? statementMetrics = environment.Metrics.RecordsStatements ? environment.Metrics : null;
        StatementTimer? timer = environment.Statistics is not null || environment.QueryLog is not null || statementMetrics is not null
            ? new StatementTimer(
                environment.Statistics,
                environment.QueryLog,
                environment.QueryLogSettings,
                environment.Shapes,
                statementMetrics,
                state,
                new StatementSource(Id, environment.InstanceName, database, user, context?.ApplicationName ?? startup.GetParameter("application_name"), client.Address))
            : null;
        FramePipeline pipeline = environment.Pipeline;
        SessionHandlers? handlers = context is null || pipeline.IsEmpty ? null : pipeline.Create(state, context, environment.Interceptors, environment.LiveRules, timer);
        IReadOnlyList<IFrameHandler>? toServer = handlers?.ToServer;
        IReadOnlyList<IFrameHandler>? toClient = handlers?.ToClient;
        if (transactions is not null)
        {
            // Statement names are mapped last toward the server (a rule's rewritten Parse is prepared like any other),
            // and the answers to PgProxy's own requests are taken out first toward the client.
            toServer = [.. toServer ?? [], transactions.ToServer];
            toClient = [transactions.ToClient, .. toClient ?? []];
        }

        var frontend = new ForwardingPump(client.Reader, upstream.Stream, state, PumpDirection.ClientToServer, environment.Instance.Limits.MaxMessageSize, toServer, timer)
        {
            ForwardsTerminate = forwardsTerminate,
            LinkGate = linkGate,
        };
        var backend = new ForwardingPump(upstream.Reader, client.Stream, state, PumpDirection.ServerToClient, long.MaxValue, toClient, timer)
        {
            LinkGate = linkGate,
        };
        Linked(upstream, frontend, backend, timer);
        if (context is not null)
        {
            // Metadata queries go through the frontend's output, so they stay in order with the client's bytes.
            context.Upstream = frontend.Output;
        }

        return (frontend, backend, handlers);
    }

    /// <summary>Runs both pumps until one ends, stops the other, and says goodbye to whichever side can still hear it.</summary>
    private async Task<string> PumpAsync(ForwardingPump frontend, ForwardingPump backend, UpstreamLeg upstream)
    {
        Task<PumpStop> frontendRun = frontend.RunAsync(stopping.Token);
        Task<PumpStop> backendRun = backend.RunAsync(stopping.Token);
        Task<PumpStop> firstStopped = await Task.WhenAny(frontendRun, backendRun).ConfigureAwait(false);
        if (firstStopped == frontendRun && await frontendRun.ConfigureAwait(false) == PumpStop.Terminated)
        {
            await AwaitUpstreamCloseAsync(backendRun).ConfigureAwait(false);
        }
        else if (firstStopped == frontendRun && await frontendRun.ConfigureAwait(false) is PumpStop.SourceClosed or PumpStop.SourceFailed && state.OutstandingRequests > 0)
        {
            // The client left while a statement ran. PostgreSQL notices a closed connection only when it next reads or
            // writes, so its backend would run the statement to the end (measured: a pg_sleep(60) outlived its client by
            // the whole minute). A cancel ends it now; it goes on its own connection, bounded by connect-timeout.
            _ = CancelAsync();
        }

        // One side has ended: stop the other at once, so no upstream connection outlives its client.
        client.Reader.CancelPendingRead();
        upstream.Reader.CancelPendingRead();
        // Cancel, not CancelAsync: the callbacks (the other pump's pending reads) are short, and running them
        // here spares a thread-pool hop per session.
        stopping.Cancel();
        PumpStop frontendStop = await frontendRun.ConfigureAwait(false);
        PumpStop backendStop = await backendRun.ConfigureAwait(false);
        string reason = await FinishAsync(frontendStop, backendStop, frontend, backend, upstream.Stream).ConfigureAwait(false);
        if (frontendStop is PumpStop.MessageTooLarge or PumpStop.InvalidMessage)
        {
            await upstream.DisposeAsync().ConfigureAwait(false);
            await client.DrainAsync().ConfigureAwait(false);
        }

        return reason;
    }

    /// <summary>
    /// After the client's Terminate has gone upstream, gives the server a moment to close its end, which ends the
    /// backend pump on its own. Cancelling that pump's pending read instead completes the read on the thread pool
    /// with an exception, which, once per session, was a large part of the proxy's CPU time under pgbench -C.
    /// </summary>
    private async Task AwaitUpstreamCloseAsync(Task<PumpStop> backendRun)
    {
        try
        {
            await backendRun.WaitAsync(UpstreamCloseGrace, stopping.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            // The server keeps the connection open, or the proxy is stopping: the pump is cancelled instead.
        }
    }

    /// <summary>Says goodbye to whichever side can still take a message (see <see cref="RelayEnd"/>), and names why the session ended.</summary>
    private async Task<string> FinishAsync(
        PumpStop frontendStop,
        PumpStop backendStop,
        ForwardingPump frontend,
        ForwardingPump backend,
        Stream upstreamStream)
    {
        var stops = new RelayStops(
            frontendStop,
            backendStop,
            frontend.OffendingLength,
            backend.OffendingLength,
            NothingFromServer: backend.BytesForwarded == 0 && authenticationBytesToClient == 0,
            ShuttingDown: Volatile.Read(ref shutdownMode) != 0);
        (string reason, ProtocolError? toClient) = RelayEnd.Of(stops, environment.Instance.Limits.MaxMessageSize, environment.Instance.Redirect.Name);
        if (toClient is not null)
        {
            Log.SessionProtocolError(environment.Logger, Id, reason);
            if (backend.AtFrameBoundary)
            {
                await client.TryWriteAsync(ErrorResponseWriter.Build(ErrorSeverity.Fatal, toClient)).ConfigureAwait(false);
                environment.Metrics.ClientError(environment.InstanceName, toClient.SqlState);
            }
        }

        // Ending the upstream session politely spares the server an "unexpected EOF" in its log.
        if (frontendStop != PumpStop.Terminated && frontend.AtFrameBoundary)
        {
            await BoundedWrites.TryWriteAsync(upstreamStream, FrontendMessages.Terminate).ConfigureAwait(false);
        }

        return reason;
    }
}
