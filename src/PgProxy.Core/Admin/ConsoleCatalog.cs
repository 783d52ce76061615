namespace PgProxy.Core.Admin;

/// <summary>The console's commands.</summary>
internal enum ConsoleCommandKind
{
    ShowHelp,
    ShowVersion,
    ShowConfig,
    ShowInstances,
    ShowSessions,
    ShowStats,
    ShowQueries,
    ShowRules,
    ShowPlugins,
    ShowPools,
    Kill,
    Cancel,
    Reload,
    ResetStats,
    Shutdown,
    Pause,
    Resume,
    Reconnect,
}

/// <summary>One command as SHOW HELP lists it, with the columns it returns (in order) or the tag it completes with.</summary>
/// <param name="Kind">Which command.</param>
/// <param name="Syntax">How it is written.</param>
/// <param name="Description">What it does, in one line.</param>
/// <param name="Columns">The columns of its rows, in order; null for a command that returns none (a Describe gets NoData).</param>
/// <param name="Tag">The CommandComplete tag of a command without rows; commands with rows complete with <c>SELECT n</c>.</param>
internal sealed record ConsoleCommandInfo(ConsoleCommandKind Kind, string Syntax, string Description, IReadOnlyList<string>? Columns, string? Tag = null);

/// <summary>
/// Every console command, in the order SHOW HELP lists them. The columns are a contract (docs/operations.md lists them,
/// a test compares the two): a column is added at the end, never moved, so scripts that read by position keep working.
/// </summary>
internal static class ConsoleCatalog
{
    public static IReadOnlyList<ConsoleCommandInfo> All { get; } =
    [
        new(ConsoleCommandKind.ShowHelp, "SHOW HELP", "the console's commands", ["command", "description"]),
        new(ConsoleCommandKind.ShowVersion, "SHOW VERSION", "PgProxy's version", ["version"]),
        new(ConsoleCommandKind.ShowConfig, "SHOW CONFIG", "the running configuration, one key per row, secrets masked", ["key", "value"]),
        new(ConsoleCommandKind.ShowInstances, "SHOW INSTANCES", "each instance: addresses, TLS modes, open sessions, rules and plugins",
            ["instance", "listen", "upstream_name", "upstream", "listen_tls", "upstream_tls", "sessions", "rules", "plugins"]),
        new(ConsoleCommandKind.ShowSessions, "SHOW SESSIONS", "each open session, console sessions included",
            ["id", "instance", "client", "user", "database", "application_name", "client_tls", "server_tls", "state", "fingerprint", "statement", "since", "bytes_from_client", "bytes_to_client"]),
        new(ConsoleCommandKind.ShowStats, "SHOW STATS", "per instance: sessions, transactions, queries, bytes, errors, rewrites, refusals, masks, query times",
            ["instance", "sessions", "transactions", "queries", "bytes_from_client", "bytes_to_client", "errors", "rewrites", "refusals", "masks", "mean_ms", "p50_ms", "p99_ms"]),
        new(ConsoleCommandKind.ShowQueries, "SHOW QUERIES [ORDER BY total|mean|p99|calls] [LIMIT n]", "per statement fingerprint: calls, times, rows, errors",
            ["instance", "database", "user", "fingerprint", "calls", "total_ms", "mean_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms", "rows", "errors", "rewritten", "refused", "first_seen", "last_seen", "query"]),
        new(ConsoleCommandKind.ShowRules, "SHOW RULES", "per rule and mask: its counters",
            ["instance", "kind", "name", "matched", "applied", "log_only", "refusals", "regex_timeouts"]),
        new(ConsoleCommandKind.ShowPlugins, "SHOW PLUGINS", "each plugin loaded: where from, calls, failures, timeouts, mean time per call",
            ["plugin", "kind", "path", "calls", "failures", "timeouts", "mean_us"]),
        new(ConsoleCommandKind.ShowPools, "SHOW POOLS", "each server connection pool (instance, user, database): clients active and waiting, servers active, idle and used, the longest wait",
            ["instance", "user", "database", "clients_active", "clients_waiting", "servers_active", "servers_idle", "servers_used", "longest_wait_ms"]),
        new(ConsoleCommandKind.Kill, "KILL <session id>", "ends a session: its client gets FATAL 57P01, its server connection is closed", null, "KILL"),
        new(ConsoleCommandKind.Cancel, "CANCEL <session id>", "cancels the session's running statement (a CancelRequest to its server)", null, "CANCEL"),
        new(ConsoleCommandKind.Reload, "RELOAD", "reloads the configuration file, as SIGHUP does; an error lists every problem", null, "RELOAD"),
        new(ConsoleCommandKind.ResetStats, "RESET STATS", "sets the statistics back to zero", null, "RESET"),
        new(ConsoleCommandKind.Shutdown, "SHUTDOWN [SAFE]", "stops PgProxy: SAFE ends each session at its idle point as SIGTERM does, plain SHUTDOWN ends them now", null, "SHUTDOWN"),
        new(ConsoleCommandKind.Pause, "PAUSE [instance]", "pooling instances stop lending server connections (clients wait, up to queue-timeout) and close them as they come back; completes when all are closed", null, "PAUSE"),
        new(ConsoleCommandKind.Resume, "RESUME [instance]", "pooling instances lend server connections again, to the clients that waited first", null, "RESUME"),
        new(ConsoleCommandKind.Reconnect, "RECONNECT [instance]", "replaces every pooled server connection: idle ones now, lent ones as they come back", null, "RECONNECT"),
    ];

    /// <summary>The syntax of every command, for the hint of an unknown one.</summary>
    public static string Summary { get; } = string.Join(", ", All.Select(command => command.Syntax));

    public static ConsoleCommandInfo Of(ConsoleCommandKind kind) => All.First(command => command.Kind == kind);
}
