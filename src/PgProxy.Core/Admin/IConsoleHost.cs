using PgProxy.Core.Configuration;
using PgProxy.Core.Hosting;
using PgProxy.Core.Interception;
using PgProxy.Core.Rules;
using PgProxy.Core.Statistics;

namespace PgProxy.Core.Admin;

/// <summary>
/// What the console reports on and steers: the running proxy (<see cref="ProxyServer"/>). Kept behind an interface so
/// the commands and their results can be tested without sockets.
/// </summary>
internal interface IConsoleHost
{
    /// <summary>The snapshot new sessions get; null before the first load.</summary>
    ConfigSnapshot? Current { get; }

    /// <summary>The per-query statistics and per-instance totals (kept across reloads); empty while <c>stats.queries</c> is off.</summary>
    QueryStatistics Statistics { get; }

    /// <summary>The same reload as SIGHUP: all of the file, or nothing and every error.</summary>
    Task<ReloadResult> ReloadAsync(CancellationToken cancellationToken);

    /// <summary>Every instance listening now, in configuration order.</summary>
    IReadOnlyList<ConsoleInstance> Instances();

    /// <summary>Every session open now (console sessions included), each as it is at this moment.</summary>
    IReadOnlyList<SessionView> Sessions();

    /// <summary>Every server connection pool of the pooling instances, with its counts now.</summary>
    IReadOnlyList<PoolView> Pools();

    /// <summary>
    /// PAUSE, RESUME or RECONNECT on the pools of <paramref name="instance"/> (null: every pooling instance); the
    /// instances acted on, none when no pooling instance has that name.
    /// </summary>
    Task<IReadOnlyList<string>> SteerPoolsAsync(ConsoleCommandKind action, string? instance, CancellationToken cancellationToken);

    /// <summary>Ends session <paramref name="sessionId"/> now, its client told 57P01; false when there is no such session.</summary>
    bool Kill(long sessionId);

    /// <summary>Sends a CancelRequest to session <paramref name="sessionId"/>'s server for its running statement.</summary>
    Task<CancelOutcome> CancelAsync(long sessionId);

    /// <summary>Stops the proxy as SIGTERM does (<paramref name="safe"/>: each session at its idle point) or at once.</summary>
    void RequestStop(bool safe);
}

/// <summary>
/// One instance as the console shows it: its configuration, the addresses actually bound, the rules in force, and the
/// interceptors new sessions get (whose counters SHOW PLUGINS reads).
/// </summary>
internal sealed record ConsoleInstance(InstanceConfig Config, IReadOnlyList<string> Endpoints, RuleSet Rules, InstanceInterceptors Interceptors);

/// <summary>One pool as SHOW POOLS shows it.</summary>
internal sealed record PoolView(string Instance, string User, string Database, Pooling.PoolCounts Counts);

/// <summary>What became of a CANCEL.</summary>
internal enum CancelOutcome
{
    /// <summary>The CancelRequest went to the session's server.</summary>
    Sent,

    /// <summary>No session has that id.</summary>
    NoSuchSession,

    /// <summary>The session has no server connection (a console session, or one still logging in).</summary>
    NoServer,
}
