using System.Globalization;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Admin;

/// <summary>How SHOW QUERIES orders its rows.</summary>
internal enum QueryOrder
{
    Total,
    Mean,
    P99,
    Calls,
}

/// <summary>One parsed console command and its arguments.</summary>
/// <param name="Kind">Which command.</param>
/// <param name="Text">The statement as written, for the log.</param>
internal sealed record ConsoleCommand(ConsoleCommandKind Kind, string Text)
{
    /// <summary>The session KILL and CANCEL act on.</summary>
    public long SessionId { get; init; }

    /// <summary>SHUTDOWN SAFE: each session at its idle point.</summary>
    public bool Safe { get; init; }

    /// <summary>PAUSE, RESUME and RECONNECT: the instance (its listen name), or null for every pooling instance.</summary>
    public string? Instance { get; init; }

    /// <summary>SHOW QUERIES ORDER BY; total when not given.</summary>
    public QueryOrder Order { get; init; } = QueryOrder.Total;

    /// <summary>SHOW QUERIES LIMIT; null for every row.</summary>
    public int? Limit { get; init; }

    public ConsoleCommandInfo Info => ConsoleCatalog.Of(Kind);
}

/// <summary>A console command that cannot run: the ErrorResponse the client gets, with an optional hint.</summary>
internal sealed class ConsoleException(string sqlState, string message, string? hint = null) : Exception(message)
{
    public string SqlState { get; } = sqlState;

    public string? Hint { get; } = hint;
}

/// <summary>
/// Reads console commands: keywords in any case, separated by any white space, with an optional trailing semicolon.
/// One query string may hold several, separated by semicolons (psql -c "SHOW VERSION; SHOW HELP").
/// </summary>
internal static class ConsoleCommandParser
{
    private static readonly char[] Spaces = [' ', '\t', '\r', '\n', '\f', '\v'];

    /// <summary>The statements of a query string, trimmed, empty ones left out.</summary>
    public static IReadOnlyList<string> Split(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return [.. text.Split(';').Select(statement => statement.Trim(Spaces)).Where(statement => statement.Length > 0)];
    }

    /// <summary>Parses one statement (see <see cref="Split"/>).</summary>
    /// <exception cref="ConsoleException">42601: not a console command, or its arguments are wrong.</exception>
    public static ConsoleCommand Parse(string statement)
    {
        ArgumentNullException.ThrowIfNull(statement);
        string text = statement.Trim(Spaces).TrimEnd(';').Trim(Spaces);
        string[] words = text.Split(Spaces, StringSplitOptions.RemoveEmptyEntries);
        string first = words.Length > 0 ? words[0].ToUpperInvariant() : string.Empty;
        string second = words.Length > 1 ? words[1].ToUpperInvariant() : string.Empty;
        ConsoleCommand? command = (first, second, words.Length) switch
        {
            ("SHOW", "HELP", 2) => new(ConsoleCommandKind.ShowHelp, text),
            ("SHOW", "VERSION", 2) => new(ConsoleCommandKind.ShowVersion, text),
            ("SHOW", "CONFIG", 2) => new(ConsoleCommandKind.ShowConfig, text),
            ("SHOW", "INSTANCES", 2) => new(ConsoleCommandKind.ShowInstances, text),
            ("SHOW", "SESSIONS", 2) => new(ConsoleCommandKind.ShowSessions, text),
            ("SHOW", "STATS", 2) => new(ConsoleCommandKind.ShowStats, text),
            ("SHOW", "QUERIES", _) => ParseShowQueries(text, words),
            ("SHOW", "RULES", 2) => new(ConsoleCommandKind.ShowRules, text),
            ("SHOW", "PLUGINS", 2) => new(ConsoleCommandKind.ShowPlugins, text),
            ("SHOW", "POOLS", 2) => new(ConsoleCommandKind.ShowPools, text),
            ("KILL", _, _) => new(ConsoleCommandKind.Kill, text) { SessionId = SessionIdOf("KILL", words) },
            ("CANCEL", _, _) => new(ConsoleCommandKind.Cancel, text) { SessionId = SessionIdOf("CANCEL", words) },
            ("RELOAD", _, 1) => new(ConsoleCommandKind.Reload, text),
            ("RESET", "STATS", 2) => new(ConsoleCommandKind.ResetStats, text),
            ("SHUTDOWN", _, 1) => new(ConsoleCommandKind.Shutdown, text),
            ("SHUTDOWN", "SAFE", 2) => new(ConsoleCommandKind.Shutdown, text) { Safe = true },
            ("PAUSE", _, 1 or 2) => new(ConsoleCommandKind.Pause, text) { Instance = words.Length == 2 ? words[1] : null },
            ("RESUME", _, 1 or 2) => new(ConsoleCommandKind.Resume, text) { Instance = words.Length == 2 ? words[1] : null },
            ("RECONNECT", _, 1 or 2) => new(ConsoleCommandKind.Reconnect, text) { Instance = words.Length == 2 ? words[1] : null },
            _ => null,
        };

        return command ?? throw new ConsoleException(
            SqlStates.SyntaxError,
            $"unknown console command \"{text}\"",
            $"the console's commands are: {ConsoleCatalog.Summary} (SHOW HELP describes them)");
    }

    private static long SessionIdOf(string verb, string[] words)
    {
        if (words.Length == 2 && long.TryParse(words[1], NumberStyles.None, CultureInfo.InvariantCulture, out long id) && id > 0)
        {
            return id;
        }

        throw new ConsoleException(SqlStates.SyntaxError, $"{verb} takes one session id, a number from the id column of SHOW SESSIONS: {verb} <session id>");
    }

    private static ConsoleCommand ParseShowQueries(string text, string[] words)
    {
        var command = new ConsoleCommand(ConsoleCommandKind.ShowQueries, text);
        int at = 2;
        if (at < words.Length && words[at].Equals("ORDER", StringComparison.OrdinalIgnoreCase))
        {
            QueryOrder? order = at + 2 < words.Length && words[at + 1].Equals("BY", StringComparison.OrdinalIgnoreCase)
                ? words[at + 2].ToUpperInvariant() switch
                {
                    "TOTAL" => QueryOrder.Total,
                    "MEAN" => QueryOrder.Mean,
                    "P99" => QueryOrder.P99,
                    "CALLS" => QueryOrder.Calls,
                    _ => null,
                }
                : null;
            command = command with { Order = order ?? throw QueriesSyntax() };
            at += 3;
        }

        if (at < words.Length && words[at].Equals("LIMIT", StringComparison.OrdinalIgnoreCase))
        {
            if (at + 1 >= words.Length || !int.TryParse(words[at + 1], NumberStyles.None, CultureInfo.InvariantCulture, out int limit))
            {
                throw QueriesSyntax();
            }

            command = command with { Limit = limit };
            at += 2;
        }

        return at == words.Length ? command : throw QueriesSyntax();
    }

    private static ConsoleException QueriesSyntax() =>
        new(SqlStates.SyntaxError, $"expected {ConsoleCatalog.Of(ConsoleCommandKind.ShowQueries).Syntax}");
}
