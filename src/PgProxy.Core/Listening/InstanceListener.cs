using System.Net;
using System.Net.Sockets;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Sessions;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Listening;

/// <summary>
/// The listening sockets of one instance address and their accept loops. Each accepted connection becomes a
/// <see cref="ProxySession"/> run on its own with the environment current when it was accepted; the listener tracks
/// them so the server can drain them. A reload points a listener at its instance's environment of the new snapshot,
/// or retires it (it stops accepting; its sessions run to their end).
/// </summary>
internal sealed class InstanceListener : IAsyncDisposable
{
    /// <summary>
    /// Built when the first listener is, not when descriptors have run out: then loading the assembly that writes it
    /// (which needs a descriptor) failed.
    /// </summary>
    private static readonly byte[] OutOfDescriptors =
        ErrorResponseWriter.Build(ErrorSeverity.Fatal, SqlStates.TooManyConnections, "sorry, too many clients already: PgProxy is out of file descriptors");

    private readonly SessionRegistry sessions;
    private readonly List<Socket> sockets = [];
    private readonly List<Task> acceptLoops = [];
    private readonly CancellationTokenSource stopAccepting = new();
    private SessionEnvironment current;
    private bool accepting;
    private Task? stopping;

    /// <param name="environment">What its sessions get, until a reload replaces it.</param>
    /// <param name="sessions">Every session of the server.</param>
    /// <param name="count">
    /// The instance's open sessions, for <c>max-connections</c>: shared with the listener of its previous address
    /// when a reload moves it, so the sessions still open there count too.
    /// </param>
    public InstanceListener(SessionEnvironment environment, SessionRegistry sessions, InstanceSessionCount? count = null)
    {
        current = environment;
        this.sessions = sessions;
        Listen = environment.Instance.Listen;
        Count = count ?? new InstanceSessionCount();
    }

    /// <summary>The addresses actually bound (a configured port 0 is replaced by the one the system chose).</summary>
    public IReadOnlyList<IPEndPoint> Endpoints => sockets.Select(s => (IPEndPoint)s.LocalEndPoint!).ToList();

    /// <summary>The <c>listen</c> address it was bound for; a reload with another one gets a new listener.</summary>
    public EndpointConfig Listen { get; }

    /// <summary>The name of the instance it serves now (a reload may rename the instance at the same address).</summary>
    public string InstanceName => Environment.InstanceName;

    /// <summary>The instance's open sessions.</summary>
    public InstanceSessionCount Count { get; }

    /// <summary>What new sessions get: one immutable environment of one snapshot, replaced whole by a reload.</summary>
    public SessionEnvironment Environment
    {
        get => Volatile.Read(ref current);
        set => Volatile.Write(ref current, value);
    }

    /// <summary>What it listens for, in errors: the instance, or the admin console's own <c>admin.listen</c>.</summary>
    private string What => Environment.ConsoleOnly ? "admin.listen" : $"instance \"{Listen.Name}\"";

    /// <summary>What identifies it to a process that takes over (<see cref="InheritedListeners.KeyOf"/>).</summary>
    public string Key => InheritedListeners.KeyOf(Listen, Environment.ConsoleOnly);

    /// <summary>The listening sockets, for a hand-over to another process.</summary>
    public IReadOnlyList<Socket> Sockets => sockets;

    /// <summary>
    /// Binds every address of the instance's <c>listen</c> host, or takes the sockets handed over for it by the
    /// process this one takes over from; throws if one cannot be bound.
    /// </summary>
    public async Task BindAsync(InheritedListeners? inherited, CancellationToken cancellationToken)
    {
        if (inherited is not null && inherited.TryTake(Key, out List<Socket> taken))
        {
            sockets.AddRange(taken);
            return;
        }

        EndpointConfig listen = Listen;
        int port = listen.Port;
        IPAddress[] addresses;
        try
        {
            addresses = await ResolveAsync(listen.Host, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            throw new InvalidOperationException($"{What} cannot listen on {listen.Host}: {e.Message}", e);
        }

        foreach (IPAddress address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (address.Equals(IPAddress.IPv6Any))
                {
                    socket.DualMode = true;
                }

                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                socket.Bind(new IPEndPoint(address, port));
                socket.Listen(512);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                throw new InvalidOperationException($"{What} cannot listen on {address}:{port}: {e.Message}", e);
            }

            // With port 0, every address of the host shares the port the system chose for the first.
            port = ((IPEndPoint)socket.LocalEndPoint!).Port;
            sockets.Add(socket);
        }
    }

    /// <summary>Starts the accept loops; logged only now, so a reload that binds and then fails announces nothing.</summary>
    public void StartAccepting()
    {
        accepting = true;
        DescriptorReserve.TryFill();
        SessionEnvironment environment = Environment;
        foreach (Socket socket in sockets)
        {
            if (environment.ConsoleOnly)
            {
                AdminLog.Listening(environment.Logger, socket.LocalEndPoint!);
            }
            else
            {
                Log.InstanceListening(environment.Logger, environment.InstanceName, socket.LocalEndPoint!, environment.Instance.Redirect.Name, environment.Instance.Redirect.Host, environment.Instance.Redirect.Port);
            }

            acceptLoops.Add(AcceptLoopAsync(socket, stopAccepting.Token));
        }
    }

    /// <summary>
    /// Stops taking new connections; sessions already open go on. Safe to call more than once, and after
    /// <see cref="DisposeAsync"/>: every caller waits for the one stop.
    /// </summary>
    public Task StopAcceptingAsync()
    {
        lock (sockets)
        {
            return stopping ??= StopOnceAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAcceptingAsync().ConfigureAwait(false);
        stopAccepting.Dispose();
    }

    /// <summary>
    /// Stops accepting after a hand-over: the other process accepts on the same sockets now, so closing them here must
    /// not touch what they queue (see <see cref="DescriptorPassing.MarkShared"/>).
    /// </summary>
    public Task HandOffAsync()
    {
        foreach (Socket socket in sockets)
        {
            DescriptorPassing.MarkShared(socket);
        }

        return StopAcceptingAsync();
    }

    private async Task StopOnceAsync()
    {
        // The accept loops end first, and only then are the sockets closed: closing a socket that an accept still
        // uses makes .NET disconnect it, which on a socket shared with a process that took over would reset the
        // connections queued on it.
        await stopAccepting.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(acceptLoops).ConfigureAwait(false);
        foreach (Socket socket in sockets)
        {
            socket.Dispose();
        }

        if (accepting && Environment.ConsoleOnly)
        {
            AdminLog.StoppedListening(Environment.Logger);
        }
        else if (accepting)
        {
            Log.InstanceStopped(Environment.Logger, InstanceName);
        }
    }

    private async Task AcceptLoopAsync(Socket listenSocket, CancellationToken cancellationToken)
    {
        var failures = new AcceptFailures();
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listenSocket.AcceptAsync(cancellationToken).ConfigureAwait(false);
                if (failures.Recovered() is { } failed)
                {
                    Log.AcceptRecovered(Environment.Logger, InstanceName, failed);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e) when (cancellationToken.IsCancellationRequested || e.SocketErrorCode == SocketError.OperationAborted)
            {
                return;
            }
            catch (SocketException e)
            {
                // Out of file descriptors (EMFILE, ENFILE) and the like: the pending connection stays queued, so accept
                // would fail again at once. Logged at most once a second, and retried after a pause that doubles up to
                // a second, so neither the log nor a core is flooded; serving resumes once descriptors are free.
                if (failures.Failed(out long suppressed))
                {
                    string reason = e.Message;
                    Log.AcceptFailing(Environment.Logger, InstanceName, reason, suppressed);
                }

                if (e.SocketErrorCode == SocketError.TooManyOpenSockets && DescriptorReserve.Release())
                {
                    // Out of descriptors: the reserve gives the runtime room, and the waiting client its 53300.
                    await ShedOneAsync(listenSocket, cancellationToken).ConfigureAwait(false);
                    DescriptorReserve.TryFill();
                }

                try
                {
                    await Task.Delay(failures.Pause, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            _ = RunSessionAsync(client);
        }
    }

    /// <summary>Accepts one waiting connection and refuses it as PostgreSQL refuses a client it has no room for.</summary>
    private async Task ShedOneAsync(Socket listenSocket, CancellationToken cancellationToken)
    {
        Socket client;
        try
        {
            client = await listenSocket.AcceptAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            return;
        }

        using (client)
        {
            try
            {
                SessionEnvironment environment = Environment;
                environment.Metrics.ClientError(environment.InstanceName, SqlStates.TooManyConnections);
                client.Blocking = false;
                client.Send(OutOfDescriptors, SocketFlags.None);
                client.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The client is gone already, its buffer is full (it sees the close), or the runtime itself is short of
                // descriptors: the accept loop must go on whatever happens here.
            }
        }
    }

    private async Task RunSessionAsync(Socket client)
    {
        // Read once: the session runs with this snapshot's environment to its end, whatever a reload does meanwhile.
        SessionEnvironment environment = Environment;
        int limit = environment.Instance.Limits.MaxConnections;
        if (Count.Increment() > limit && limit > 0)
        {
            Count.Decrement();
            await RefuseTooManyAsync(environment, client, limit).ConfigureAwait(false);
            return;
        }

        ProxySession created;
        try
        {
            created = new ProxySession(sessions.NextId(), environment, client);
        }
        catch (Exception e) when (e is IOException or SocketException or InvalidOperationException)
        {
            // Nothing runs for this connection: close it, and count it no more, rather than leave it open unanswered.
            Count.Decrement();
            Log.SessionCreationFailed(environment.Logger, environment.InstanceName, client.RemoteEndPoint, e);
            client.Dispose();
            return;
        }

        using ProxySession session = created;
        sessions.Add(session);
        try
        {
            // Started on the accept loop's thread, not queued to the thread pool: the synchronous start is short (it
            // stops at the first read or the upstream connect that has to wait), and a hop per connection woke an
            // idle pool thread that then spun looking for more work, most of the proxy's CPU time under pgbench -C.
            await session.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            sessions.Remove(session);
            Count.Decrement();
        }
    }

    private static async Task RefuseTooManyAsync(SessionEnvironment environment, Socket client, int limit)
    {
        Log.TooManyConnections(environment.Logger, environment.InstanceName, client.RemoteEndPoint, limit);
        environment.Metrics.ClientError(environment.InstanceName, SqlStates.TooManyConnections);
        using (client)
        {
            try
            {
                using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await client.SendAsync(ErrorResponseWriter.Build(ErrorSeverity.Fatal, SqlStates.TooManyConnections, "sorry, too many clients already"), SocketFlags.None, deadline.Token).ConfigureAwait(false);
                client.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                // The client is gone already.
            }
        }
    }

    private static async Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken)
    {
        if (host == "*")
        {
            return [IPAddress.IPv6Any];
        }

        if (IPAddress.TryParse(host, out IPAddress? address))
        {
            return [address];
        }

        IPAddress[] addresses = await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        return addresses.Length > 0 ? addresses.Distinct().ToArray() : throw new InvalidOperationException($"listen host \"{host}\" resolves to no address");
    }
}

/// <summary>The open sessions of one instance, across the listeners of its addresses.</summary>
internal sealed class InstanceSessionCount
{
    private int value;

    public int Value => Volatile.Read(ref value);

    public int Increment() => Interlocked.Increment(ref value);

    public void Decrement() => Interlocked.Decrement(ref value);
}

/// <summary>The accept failures of one accept loop in a row: when to log them, and how long to pause before retrying.</summary>
internal sealed class AcceptFailures
{
    private static readonly TimeSpan FirstPause = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan LongestPause = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(1);
    private readonly TimeProvider time;
    private long total;
    private long unlogged;
    private long lastLogged;
    private bool logged;

    public AcceptFailures(TimeProvider? time = null)
    {
        this.time = time ?? TimeProvider.System;
    }

    /// <summary>How long to wait before the next accept: doubles with each failure in a row, up to a second.</summary>
    public TimeSpan Pause { get; private set; } = FirstPause;

    /// <summary>Counts a failure; true when it is to be logged now, with how many went unlogged since the last line.</summary>
    public bool Failed(out long suppressed)
    {
        total++;
        Pause = total == 1 ? FirstPause : TimeSpan.FromTicks(Math.Min(Pause.Ticks * 2, LongestPause.Ticks));
        long now = time.GetTimestamp();
        if (!logged || time.GetElapsedTime(lastLogged, now) >= LogInterval)
        {
            suppressed = unlogged;
            unlogged = 0;
            lastLogged = now;
            logged = true;
            return true;
        }

        unlogged++;
        suppressed = 0;
        return false;
    }

    /// <summary>An accept succeeded: the number of failures before it when there were some (to log once), else null.</summary>
    public long? Recovered()
    {
        if (total == 0)
        {
            return null;
        }

        long failed = total;
        total = 0;
        unlogged = 0;
        logged = false;
        Pause = FirstPause;
        return failed;
    }
}
