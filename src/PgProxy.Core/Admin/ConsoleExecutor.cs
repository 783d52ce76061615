using System.Globalization;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Hosting;
using PgProxy.Core.Interception;
using PgProxy.Core.Plugins;
using PgProxy.Core.Rules;
using PgProxy.Core.Statistics;
using PgProxy.Protocol.Backend;
using PgProxy.Sql;

namespace PgProxy.Core.Admin;

/// <summary>What a command returned: rows under its columns, or (<see cref="Columns"/> null) just its tag.</summary>
/// <param name="Columns">The column names, in order; null for a command without rows.</param>
/// <param name="Rows">The rows, one value per column (null for SQL NULL).</param>
/// <param name="Tag">The CommandComplete tag of a command without rows.</param>
internal sealed record ConsoleResult(IReadOnlyList<string>? Columns, IReadOnlyList<IReadOnlyList<string?>> Rows, string? Tag)
{
    /// <summary>What to do once the response has reached the client (SHUTDOWN stops the proxy only then).</summary>
    public Action? AfterResponse { get; init; }

    public static ConsoleResult Of(ConsoleCommandInfo command, IReadOnlyList<IReadOnlyList<string?>> rows) => new(command.Columns, rows, null);

    public static ConsoleResult Done(ConsoleCommandInfo command) => new(null, [], command.Tag);
}

/// <summary>
/// Runs console commands against the running proxy for one console session. Commands that change something (KILL,
/// CANCEL, RELOAD, RESET, SHUTDOWN) are written to the general log with the user who ran them.
/// </summary>
internal sealed class ConsoleExecutor(IConsoleHost host, ILogger logger, long sessionId, string user)
{
    /// <summary>PgProxy's version, as SHOW VERSION and the server_version parameter give it.</summary>
    public static string Version { get; } = typeof(ConsoleExecutor).Assembly.GetName().Version?.ToString(3) ?? "unknown";

    /// <summary>
    /// The server_version a console session reports: a PostgreSQL-like number first, because libpq and Npgsql read the
    /// leading number (psql would warn of an old server and Npgsql refuse one below its minimum), then PgProxy's own.
    /// </summary>
    public static string ServerVersion { get; } = $"15.0 (PgProxy {Version})";

    public async Task<ConsoleResult> ExecuteAsync(ConsoleCommand command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        ConsoleCommandInfo info = command.Info;
        if (info.Columns is null)
        {
            AdminLog.CommandRun(logger, sessionId, user, command.Text);
        }
        else
        {
            AdminLog.QueryRun(logger, sessionId, user, command.Text);
        }

        switch (command.Kind)
        {
            case ConsoleCommandKind.ShowHelp:
                return ConsoleResult.Of(info, [.. ConsoleCatalog.All.Select(c => (IReadOnlyList<string?>)[c.Syntax, c.Description])]);
            case ConsoleCommandKind.ShowVersion:
                return ConsoleResult.Of(info, [[$"PgProxy {Version}"]]);
            case ConsoleCommandKind.ShowConfig:
                return ConsoleResult.Of(info, host.Current is { } current ? ConfigRows.Of(current.Config) : []);
            case ConsoleCommandKind.ShowInstances:
                return ConsoleResult.Of(info, InstanceRows());
            case ConsoleCommandKind.ShowSessions:
                return ConsoleResult.Of(info, [.. host.Sessions().OrderBy(s => s.Id).Select(SessionRow)]);
            case ConsoleCommandKind.ShowPlugins:
                return ConsoleResult.Of(info, PluginRows());
            case ConsoleCommandKind.ShowPools:
                return ConsoleResult.Of(info, [.. host.Pools()
                    .OrderBy(pool => pool.Instance, StringComparer.Ordinal).ThenBy(pool => pool.User, StringComparer.Ordinal).ThenBy(pool => pool.Database, StringComparer.Ordinal)
                    .Select(PoolRow)]);
            case ConsoleCommandKind.ShowStats:
                return ConsoleResult.Of(info, StatsRows());
            case ConsoleCommandKind.ShowQueries:
                return ConsoleResult.Of(info, QueryRows(command.Order, command.Limit));
            case ConsoleCommandKind.ShowRules:
                return ConsoleResult.Of(info, RuleRows());
            case ConsoleCommandKind.Kill when command.SessionId == sessionId:
                // Its own session: the answer goes out first, then the session ends with 57P01 like any other.
                return ConsoleResult.Done(info) with { AfterResponse = () => host.Kill(command.SessionId) };
            case ConsoleCommandKind.Kill:
                if (!host.Kill(command.SessionId))
                {
                    throw NoSuchSession(command.SessionId);
                }

                return ConsoleResult.Done(info);
            case ConsoleCommandKind.Cancel:
                return await host.CancelAsync(command.SessionId).ConfigureAwait(false) switch
                {
                    CancelOutcome.NoSuchSession => throw NoSuchSession(command.SessionId),
                    CancelOutcome.NoServer => throw new ConsoleException(
                        SqlStates.ObjectNotInPrerequisiteState,
                        $"session {Number(command.SessionId)} has no server connection to cancel a statement on (a console session, or one still logging in)"),
                    _ => ConsoleResult.Done(info),
                };
            case ConsoleCommandKind.Reload:
                ReloadResult reload = await host.ReloadAsync(cancellationToken).ConfigureAwait(false);
                if (!reload.Applied)
                {
                    // One line per error, each naming the file and line (or the instance, key and file), as the log has them.
                    throw new ConsoleException(
                        SqlStates.ConfigFileError,
                        $"reload failed; the running configuration (generation {Number(reload.Generation)}) stays:\n{string.Join('\n', reload.Errors)}");
                }

                return ConsoleResult.Done(info);
            case ConsoleCommandKind.Pause or ConsoleCommandKind.Resume or ConsoleCommandKind.Reconnect:
                IReadOnlyList<string> steered = await host.SteerPoolsAsync(command.Kind, command.Instance, cancellationToken).ConfigureAwait(false);
                if (steered.Count == 0)
                {
                    throw new ConsoleException(
                        SqlStates.UndefinedObject,
                        command.Instance is null ? "no instance pools connections (pool.mode is none everywhere)" : $"no pooling instance is named \"{command.Instance}\" (SHOW POOLS lists them)");
                }

                return ConsoleResult.Done(info);
            case ConsoleCommandKind.ResetStats:
                host.Statistics.Reset();
                return ConsoleResult.Done(info);
            case ConsoleCommandKind.Shutdown:
                bool safe = command.Safe;
                return ConsoleResult.Done(info) with
                {
                    AfterResponse = () =>
                    {
                        AdminLog.ShutdownRequested(logger, safe ? "safe: each session at its idle point" : "now");
                        host.RequestStop(safe);
                    },
                };
            default:
                throw new InvalidOperationException($"console command {command.Kind} has no implementation");
        }
    }

    private static ConsoleException NoSuchSession(long id) =>
        new(SqlStates.UndefinedObject, $"no session with id {Number(id)} (SHOW SESSIONS lists them)");

    private List<IReadOnlyList<string?>> InstanceRows()
    {
        IReadOnlyList<SessionView> sessions = host.Sessions();
        var rows = new List<IReadOnlyList<string?>>();
        foreach (ConsoleInstance instance in host.Instances())
        {
            InstanceConfig config = instance.Config;
            string name = config.Listen.Name;
            IEnumerable<string> plugins = config.Intercept.Queries.Concat(config.Intercept.Connects).Concat(config.Intercept.Responses)
                .Select(entry => entry.Plugin).Distinct(StringComparer.Ordinal);
            rows.Add(
            [
                name,
                string.Join(", ", instance.Endpoints),
                config.Redirect.Name,
                string.Create(CultureInfo.InvariantCulture, $"{config.Redirect.Host}:{config.Redirect.Port}"),
                ConfigRows.ModeName(config.ListenTls.Mode),
                ConfigRows.ModeName(config.UpstreamTls.Mode),
                Number(sessions.Count(s => s.Instance == name)),
                Number(instance.Rules.Rules.Count),
                string.Join(", ", plugins),
            ]);
        }

        return rows;
    }

    /// <summary>
    /// One row per instance running now (then any other the statistics know, a reload having removed it): the totals of
    /// the statistics, with the sessions still open and their bytes added, and the rewrites and refusals of its entries.
    /// </summary>
    private List<IReadOnlyList<string?>> StatsRows()
    {
        IReadOnlyDictionary<string, InstanceStatisticsSnapshot> totals = host.Statistics.InstanceSnapshots();
        IReadOnlyList<KeyValuePair<QueryKey, QueryEntrySnapshot>> entries = host.Statistics.Snapshot();
        SessionView[] open = [.. host.Sessions().Where(s => !s.Console)];
        IEnumerable<string> running = host.Instances().Select(instance => instance.Config.Listen.Name);
        var rows = new List<IReadOnlyList<string?>>();
        foreach (string name in running.Concat(totals.Keys.Order(StringComparer.Ordinal)).Distinct(StringComparer.Ordinal))
        {
            InstanceStatisticsSnapshot? total = totals.GetValueOrDefault(name);
            SessionView[] sessions = [.. open.Where(s => s.Instance == name)];
            QueryEntrySnapshot[] mine = [.. entries.Where(entry => entry.Key.Instance == name).Select(entry => entry.Value)];
            rows.Add(
            [
                name,
                Number((total?.SessionsEnded ?? 0) + sessions.Length),
                Number(total?.Transactions ?? 0),
                Number(total?.Queries ?? 0),
                Number((total?.BytesFromClients ?? 0) + sessions.Sum(s => s.BytesFromClient)),
                Number((total?.BytesToClients ?? 0) + sessions.Sum(s => s.BytesToClient)),
                string.Join(' ', (total?.ErrorsByClass ?? new Dictionary<string, long>()).OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key}:{Number(e.Value)}")),
                Number(mine.Sum(entry => entry.RewrittenBy.Values.Sum())),
                Number(mine.Sum(entry => entry.RefusedBy.Values.Sum())),
                Number(host.Instances().Where(instance => instance.Config.Listen.Name == name).SelectMany(instance => instance.Rules.Masks.Masks).Sum(mask => mask.Counters.Applied)),
                Milliseconds(total?.MeanMicroseconds ?? 0),
                Milliseconds(total?.P50Microseconds ?? 0),
                Milliseconds(total?.P99Microseconds ?? 0),
            ]);
        }

        return rows;
    }

    /// <summary>One row per statistics entry, the largest first by <paramref name="order"/>, at most <paramref name="limit"/>.</summary>
    private List<IReadOnlyList<string?>> QueryRows(QueryOrder order, int? limit)
    {
        IEnumerable<KeyValuePair<QueryKey, QueryEntrySnapshot>> entries = host.Statistics.Snapshot().OrderByDescending(entry => order switch
        {
            QueryOrder.Mean => entry.Value.MeanMicroseconds,
            QueryOrder.P99 => entry.Value.P99Microseconds,
            QueryOrder.Calls => entry.Value.Calls,
            _ => entry.Value.TotalMicroseconds,
        });
        if (limit is { } most)
        {
            entries = entries.Take(most);
        }

        return [.. entries.Select(entry => (IReadOnlyList<string?>)
        [
            entry.Key.Instance,
            entry.Key.Database,
            entry.Key.User,
            entry.Key.Fingerprint.ToString("x16", CultureInfo.InvariantCulture),
            Number(entry.Value.Calls),
            Milliseconds(entry.Value.TotalMicroseconds),
            Milliseconds(entry.Value.MeanMicroseconds),
            Milliseconds(entry.Value.MinMicroseconds),
            Milliseconds(entry.Value.MaxMicroseconds),
            Milliseconds(entry.Value.P50Microseconds),
            Milliseconds(entry.Value.P95Microseconds),
            Milliseconds(entry.Value.P99Microseconds),
            Number(entry.Value.Rows),
            Number(entry.Value.Errors),
            Number(entry.Value.RewrittenBy.Values.Sum()),
            Number(entry.Value.RefusedBy.Values.Sum()),
            Timestamp(entry.Value.FirstSeen),
            Timestamp(entry.Value.LastSeen),
            PasswordRedaction.Redact(entry.Value.NormalizedText), // no literal is left by Normalize; checked all the same
        ])];
    }

    /// <summary>Microseconds as milliseconds with three decimals: <c>0.412</c>.</summary>
    private static string Milliseconds(double microseconds) =>
        (microseconds / 1000).ToString("0.000", CultureInfo.InvariantCulture);

    /// <summary>
    /// One row per rule in force, then one per mask, instance by instance in configuration order, each in its order. The
    /// counters are the running set's: a reload builds new rules and masks, which count from zero.
    /// </summary>
    private List<IReadOnlyList<string?>> RuleRows() =>
        [.. host.Instances().SelectMany(instance => instance.Rules.Rules.Select(rule => CounterRow(instance, "rule", rule.Name, rule.Counters))
            .Concat(instance.Rules.Masks.Masks.Select(mask => CounterRow(instance, "mask", mask.Name, mask.Counters))))];

    private static IReadOnlyList<string?> CounterRow(ConsoleInstance instance, string kind, string name, RuleCounters counters) =>
    [
        instance.Config.Listen.Name,
        kind,
        name,
        Number(counters.Matched),
        Number(counters.Applied),
        Number(counters.LogOnlyHits),
        Number(counters.Refusals),
        Number(counters.RegexTimeouts),
    ];

    /// <summary>
    /// One row per plugin loaded, with what its interceptor entries counted on every instance, all kinds together. The
    /// counters are the running snapshot's: a reload builds new entries, which count from zero, and sessions still on an
    /// older snapshot count on its entries, which are no longer shown.
    /// </summary>
    private List<IReadOnlyList<string?>> PluginRows()
    {
        IReadOnlyList<LoadedPlugin> plugins = host.Current?.Pipelines.Plugins ?? [];
        IReadOnlyList<ConsoleInstance> instances = host.Instances();
        return [.. plugins.Select(plugin =>
        {
            InterceptorCounts counts = instances.Aggregate(default(InterceptorCounts), (sum, instance) => sum.Add(instance.Interceptors.CountsOf(plugin.Name)));
            return (IReadOnlyList<string?>)
            [
                plugin.Name,
                KindName(plugin.Kind),
                plugin.Path,
                Number(counts.Calls),
                Number(counts.Failures),
                Number(counts.Timeouts),
                counts.MeanMicroseconds.ToString("0.0", CultureInfo.InvariantCulture),
            ];
        })];
    }

    private static IReadOnlyList<string?> PoolRow(PoolView pool) =>
    [
        pool.Instance,
        pool.User,
        pool.Database,
        Number(pool.Counts.Active),
        Number(pool.Counts.Waiting),
        Number(pool.Counts.Active),
        Number(pool.Counts.Idle),
        Number(pool.Counts.Opened),
        pool.Counts.LongestWait.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture),
    ];

    private static string KindName(PluginKind kind) => kind switch
    {
        PluginKind.SourceFile => "source file",
        PluginKind.SourceDirectory => "source folder",
        _ => "assembly",
    };

    private static IReadOnlyList<string?> SessionRow(SessionView session) =>
    [
        Number(session.Id),
        session.Instance,
        session.Client,
        session.User,
        session.Database,
        session.ApplicationName,
        OnOff(session.ClientTls),
        session.ServerTls is { } serverTls ? OnOff(serverTls) : null,
        StateName(session.State),
        session.Fingerprint,
        session.Statement,
        Timestamp(session.Since),
        Number(session.BytesFromClient),
        Number(session.BytesToClient),
    ];

    /// <summary>The words pg_stat_activity.state uses, and <c>waiting</c> for a session not linked to a server yet.</summary>
    public static string StateName(SessionState state) => state switch
    {
        SessionState.Idle => "idle",
        SessionState.Active => "active",
        SessionState.IdleInTransaction => "idle in transaction",
        _ => "waiting",
    };

    /// <summary>A timestamp as PostgreSQL writes a timestamptz in UTC with DateStyle ISO, to the millisecond.</summary>
    public static string Timestamp(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy'-'MM'-'dd HH':'mm':'ss'.'fff'+00'", CultureInfo.InvariantCulture);

    private static string OnOff(bool value) => value ? "on" : "off";

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
}
