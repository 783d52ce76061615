using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Rules;

namespace PgProxy.Core.Tests.Rules;

/// <summary>Rule sets built from YAML the way an instance gets them: through the configuration loader, then <see cref="RuleSet.Build(IReadOnlyList{RuleConfig}, ProxySettings)"/>.</summary>
internal static class RuleSets
{
    public static readonly RuleSubject App = new("app", "shop", "psql", IPAddress.Parse("10.1.2.3"));

    /// <summary>A configuration whose one instance has <paramref name="rules"/> (a YAML list, any indentation) and <paramref name="settings"/> lines.</summary>
    public static string Config(string rules, string settings = "") =>
        "settings:\n" + Indent(settings, "  ") + "\ninstances:\n"
        + "  - listen: {name: proxy, host: 127.0.0.1, port: 6432}\n"
        + "    redirect: {name: db, host: 127.0.0.1, port: 5432}\n"
        + "    rules:\n" + Indent(rules, "      ");

    public static ProxyConfig Load(string yaml) => ConfigLoader.Parse(yaml, Path.GetTempPath(), "config.yml");

    public static RuleSet Build(string rules, string settings = "")
    {
        ProxyConfig config = Load(Config(rules, settings));
        return RuleSet.Build(config.Instances[0].Rules, config.Settings);
    }

    public static RuleDecision Evaluate(this RuleSet rules, string sql, RuleSubject? subject = null, QueryProtocol protocol = QueryProtocol.Simple, ILogger? log = null) =>
        rules.Evaluate(sql, subject ?? App, protocol, log ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, sessionId: 7);

    /// <summary>The text that goes on: the decision's, or the query's own when unchanged.</summary>
    public static string Result(this RuleSet rules, string sql, RuleSubject? subject = null, QueryProtocol protocol = QueryProtocol.Simple) =>
        rules.Evaluate(sql, subject, protocol).Text ?? sql;

    private static string Indent(string text, string indent)
    {
        string trimmed = text.Trim('\n');
        if (trimmed.Length == 0)
        {
            return "";
        }

        string[] lines = trimmed.Split('\n');
        int common = lines.Where(line => line.Trim().Length > 0).Min(line => line.Length - line.TrimStart().Length);
        return string.Join('\n', lines.Select(line => line.Length >= common ? indent + line[common..] : line)) + "\n";
    }
}

/// <summary>Collects what is logged, as event id, level and formatted message.</summary>
internal sealed class ListLogger : ILogger
{
    private readonly ConcurrentQueue<(EventId Id, LogLevel Level, string Message)> entries = new();

    public IReadOnlyList<(EventId Id, LogLevel Level, string Message)> Entries => [.. entries];

    public IReadOnlyList<string> Messages => [.. entries.Select(entry => entry.Message)];

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        entries.Enqueue((eventId, logLevel, formatter(state, exception)));
}
