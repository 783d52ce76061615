using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using PgProxy.Core.Authentication;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Server;
using PgProxy.Core.Sessions;
using PgProxy.Core.Transport;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Pooling;

/// <summary>
/// The pools of one pooling instance, one per (user, database), made on first use and kept across reloads that leave
/// the pool's settings, the server and its TLS alone (a reload that changes them retires the pools: idle connections
/// close at once, lent ones when they come back). Also the instance's cancel keys: each client gets its own
/// BackendKeyData, and a CancelRequest with it reaches the server connection running that client's statement.
/// </summary>
internal sealed class InstancePools : IAsyncDisposable
{
    private static readonly TimeSpan MaintenanceInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<(string User, string Database), ServerPool<PooledServer>> pools = new();
    private readonly ConcurrentDictionary<(string User, string Database), ServerCredential> credentials = new();
    private readonly ConcurrentDictionary<int, CancelTarget> cancelTargets = new();
    private readonly ConcurrentDictionary<string, NotificationHub> hubs = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource stopping = new();
    private readonly Task maintenance;
    private SessionEnvironment environment;
    private int paused;

    public InstancePools(SessionEnvironment environment)
    {
        this.environment = environment;
        maintenance = MaintainAsync();
    }

    /// <summary>The instance's environment in force now: new server connections are opened with its settings.</summary>
    public SessionEnvironment Environment => Volatile.Read(ref environment);

    /// <summary>Every pool now, for the console and metrics.</summary>
    public IEnumerable<ServerPool<PooledServer>> All => pools.Values;

    /// <summary>
    /// Takes the environment of a new snapshot. Pools made under other pool settings, another server or another TLS
    /// mode are retired; the others go on, their idle connections reused.
    /// </summary>
    public void Use(SessionEnvironment next)
    {
        ArgumentNullException.ThrowIfNull(next);
        SessionEnvironment previous = Interlocked.Exchange(ref environment, next);
        InstanceConfig before = previous.Instance;
        InstanceConfig after = next.Instance;
        if (before.Pool != after.Pool || before.Redirect != after.Redirect || before.UpstreamTls != after.UpstreamTls)
        {
            foreach ((string User, string Database) key in pools.Keys)
            {
                if (pools.TryRemove(key, out ServerPool<PooledServer>? retired))
                {
                    _ = retired.DisposeAsync().AsTask();
                }
            }
        }
    }

    /// <summary>The pool of (user, database), remembering <paramref name="credential"/> to open its connections with.</summary>
    public ServerPool<PooledServer> For(string user, string database, ServerCredential? credential)
    {
        if (credential is not null)
        {
            // The latest client's key serves the connections opened from now on (a password change on the server
            // is picked up with the next client that logs in).
            credentials[(user, database)] = credential.Copy();
        }

        ServerPool<PooledServer> pool = pools.GetOrAdd((user, database), static (key, owner) => owner.NewPool(key.User, key.Database), this);
        if (Paused && !pool.Paused)
        {
            // Made while PAUSE is in force: it waits with the others (nothing is lent yet, so this completes at once).
            _ = pool.PauseAsync(CancellationToken.None);
        }

        return pool;
    }

    /// <summary>
    /// The one listening connection of <paramref name="database"/> for transaction pooling's LISTEN (see
    /// <see cref="NotificationHub"/>); opened with the credentials of <paramref name="user"/>'s pool if it is the first.
    /// </summary>
    public NotificationHub NotificationsFor(string user, string database) =>
        hubs.GetOrAdd(database, static (name, state) => new NotificationHub(
            name,
            cancellationToken => new Connections(state.Owner, state.User, name).OpenAsync(cancellationToken),
            state.Owner.Environment.Logger,
            state.Owner.Environment.Instance.Limits.ServerLoginTimeout), (Owner: this, User: user));

    /// <summary>The instance's name.</summary>
    public string InstanceName => Environment.InstanceName;

    /// <summary>Whether PAUSE is in force for the instance (pools made meanwhile start paused too).</summary>
    public bool Paused => Volatile.Read(ref paused) != 0;

    /// <summary>PAUSE: every pool stops lending and closes its connections; completes when all are closed.</summary>
    public Task PauseAsync(CancellationToken cancellationToken)
    {
        Volatile.Write(ref paused, 1);
        return Task.WhenAll(pools.Values.Select(pool => pool.PauseAsync(cancellationToken)));
    }

    /// <summary>RESUME: every pool lends again.</summary>
    public Task ResumeAsync()
    {
        Volatile.Write(ref paused, 0);
        return Task.WhenAll(pools.Values.Select(pool => pool.ResumeAsync()));
    }

    /// <summary>RECONNECT: every connection open now is replaced: idle ones at once, lent ones as they come back.</summary>
    public Task ReconnectAsync() => Task.WhenAll(pools.Values.Select(pool => pool.ReconnectAsync()));

    /// <summary>A BackendKeyData of the client's own, which <see cref="TryFindCancelTarget"/> maps back to its session.</summary>
    public (int ProcessId, int SecretKey) RegisterCancelKey(Func<PooledServer?> linkedServer)
    {
        while (true)
        {
            int processId = RandomNumberGenerator.GetInt32(1, int.MaxValue);
            int secret = RandomNumberGenerator.GetInt32(int.MinValue, int.MaxValue);
            if (cancelTargets.TryAdd(processId, new CancelTarget(secret, linkedServer)))
            {
                return (processId, secret);
            }
        }
    }

    public void ReleaseCancelKey(int processId) => cancelTargets.TryRemove(processId, out _);

    /// <summary>
    /// The server connection a client's CancelRequest is for, and the CancelRequest with that connection's own key; null
    /// when none. The connection counts the cancel as in flight (<see cref="PooledServer.CancelStarted"/>): the caller
    /// ends it once the cancel's own connection has closed.
    /// </summary>
    public (byte[] Request, PooledServer Server)? TryFindCancelTarget(StartupPacket cancel)
    {
        ArgumentNullException.ThrowIfNull(cancel);
        byte[] raw = cancel.RawBytes;
        if (raw.Length < StartupCodes.MinCancelRequestLength)
        {
            return null;
        }

        int processId = BinaryPrimitives.ReadInt32BigEndian(raw.AsSpan(8));
        int secret = BinaryPrimitives.ReadInt32BigEndian(raw.AsSpan(12));
        if (!cancelTargets.TryGetValue(processId, out CancelTarget? target) || target.Secret != secret
            || target.LinkedServer() is not { BackendKey: { Length: >= 8 } key } server)
        {
            return null;
        }

        // Counted, then checked again: a session unlinking writes its link, then reads the count (both fenced), so
        // either it waits for this cancel or this sees the connection gone.
        server.CancelStarted();
        if (!ReferenceEquals(target.LinkedServer(), server))
        {
            server.CancelEnded();
            return null;
        }

        return (StartupPacketWriter.BuildCancelRequest(BinaryPrimitives.ReadInt32BigEndian(key), key.AsSpan(4)), server);
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        await maintenance.ConfigureAwait(false);
        foreach (ServerPool<PooledServer> pool in pools.Values)
        {
            await pool.DisposeAsync().ConfigureAwait(false);
        }

        pools.Clear();
        foreach (NotificationHub hub in hubs.Values)
        {
            await hub.DisposeAsync().ConfigureAwait(false);
        }

        foreach (ServerCredential credential in credentials.Values)
        {
            credential.Dispose();
        }

        stopping.Dispose();
    }

    private ServerPool<PooledServer> NewPool(string user, string database)
    {
        SessionEnvironment current = Environment;
        var key = new PoolKey(current.InstanceName, user, database);
        return new ServerPool<PooledServer>(key, current.Instance.Pool, new Connections(this, user, database))
        {
            Waited = seconds => current.Metrics.PoolWaited(key.Instance, key.User, key.Database, seconds),
        };
    }

    private async Task MaintainAsync()
    {
        using var timer = new PeriodicTimer(MaintenanceInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping.Token).ConfigureAwait(false))
            {
                foreach (ServerPool<PooledServer> pool in pools.Values)
                {
                    try
                    {
                        await pool.MaintainAsync(stopping.Token).ConfigureAwait(false);
                    }
                    catch (ObjectDisposedException)
                    {
                        // Retired by a reload while this round ran.
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private sealed record CancelTarget(int Secret, Func<PooledServer?> LinkedServer);

    /// <summary>How a pool opens a connection: connect and TLS as every session does, then PgProxy's own login.</summary>
    private sealed class Connections(InstancePools owner, string user, string database) : IServerConnectionFactory<PooledServer>
    {
        public async Task<PooledServer> OpenAsync(CancellationToken cancellationToken)
        {
            SessionEnvironment current = owner.Environment;
            ServerConnection connection = await ServerConnection.ConnectAsync(
                current, current.Security, EventLoops.Next(), sessionId: 0, new ServerProtocolState(), cancellationToken).ConfigureAwait(false);
            try
            {
                // Only who and where: each client's own parameters are set on the connection when it is linked to it.
                byte[] startup = StartupPacketWriter.Build(StartupCodes.Protocol30, [new("user", user), new("database", database)]);
                owner.credentials.TryGetValue((user, database), out ServerCredential? credential);
                ServerLoginResult login = await ServerLogin.RunAsync(connection.Leg, startup, user, current.Instance.Redirect.Name, credential, cancellationToken).ConfigureAwait(false);
                string pool = new PoolKey(current.InstanceName, user, database).ToString();
                Log.PoolServerOpened(current.Logger, pool, current.Instance.Redirect.Name);
                return new PooledServer(connection.Leg, login, current.Instance.Pool.Mode == PoolMode.Transaction ? current.Instance.Pool.PreparedStatements : 0);
            }
            catch
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }

        public bool IsUsable(PooledServer connection) => !connection.IsBroken;

        public void Parked(PooledServer connection) => connection.WatchWhileIdle();

        public async ValueTask CloseAsync(PooledServer connection)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
