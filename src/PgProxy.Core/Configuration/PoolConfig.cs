namespace PgProxy.Core.Configuration;

/// <summary><c>pool.mode</c>: how server connections are shared between clients.</summary>
public enum PoolMode
{
    /// <summary>One server connection per client, opened with its session and closed with it (the default).</summary>
    None,

    /// <summary>Server connections reused between client sessions: a client holds one for its whole session.</summary>
    Session,

    /// <summary>A server connection per transaction: linked to a client from its first message to the idle ReadyForQuery.</summary>
    Transaction,
}

/// <summary><c>pool</c>: an instance's connection pooling. Absent: <see cref="None"/>, one server connection per client.</summary>
public sealed record PoolConfig
{
    public static PoolConfig None { get; } = new();

    /// <summary><c>mode</c>: none (default), session or transaction.</summary>
    public PoolMode Mode { get; init; } = PoolMode.None;

    /// <summary><c>size</c>: server connections per (user, database) at most. Default 20.</summary>
    public int Size { get; init; } = 20;

    /// <summary><c>min-idle</c>: idle server connections kept per (user, database) however long they are idle. Default 0.</summary>
    public int MinIdle { get; init; }

    /// <summary><c>queue-timeout</c>: how long a client waits for a server connection before an error naming the pool. Default 30 s.</summary>
    public TimeSpan QueueTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary><c>server-idle-timeout</c>: an idle server connection unused this long is closed. Default 10 min.</summary>
    public TimeSpan ServerIdleTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary><c>server-lifetime</c>: a server connection this old is closed when it next returns to the pool. Default 1 h.</summary>
    public TimeSpan ServerLifetime { get; init; } = TimeSpan.FromHours(1);

    /// <summary><c>reset-query</c>: run when a server connection returns to the pool in session mode. Default <c>DISCARD ALL</c>.</summary>
    public string ResetQuery { get; init; } = "DISCARD ALL";

    /// <summary><c>prepared-statements</c>: statements kept per server connection, least recently used closed first; 0 = off. Default 1000.</summary>
    public int PreparedStatements { get; init; } = 1000;

    /// <summary>Whether the proxy shares server connections, so it must authenticate clients itself.</summary>
    public bool Pools => Mode != PoolMode.None;
}
