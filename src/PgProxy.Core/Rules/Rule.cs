using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;

namespace PgProxy.Core.Rules;

/// <summary>
/// One rule of a <see cref="RuleSet"/>, ready to run: its configuration, the mode it runs in (log-only when
/// <c>settings.rules-mode</c> says so, whatever its own), and its counters. Immutable but for the counters.
/// </summary>
public sealed class Rule
{
    internal Rule(RuleConfig config, RuleMode settingsMode)
    {
        Config = config;
        Mode = settingsMode == RuleMode.LogOnly ? RuleMode.LogOnly : config.Mode;
        DisplayName = $"rule \"{config.Name}\"";
        WouldDo = config switch
        {
            { Refuse: { } refusal } => string.Create(CultureInfo.InvariantCulture, $"refuse it with {refusal.SqlState} {refusal.Message}"),
            { Rewrite: not null, Tag: not null } => "rewrite and tag it",
            { Rewrite: not null } => "rewrite it",
            { Tag: not null } => "tag it",
            _ => "log it",
        };
    }

    /// <summary>The rule's unique name within its instance.</summary>
    public string Name => Config.Name;

    /// <summary>The mode the rule runs in: its own, or log-only when <c>settings.rules-mode</c> is log-only.</summary>
    public RuleMode Mode { get; }

    public RuleConfig Config { get; }

    public RuleCounters Counters { get; } = new();

    /// <summary>The name as the intercept log shows the author of a change: <c>rule "NAME"</c>.</summary>
    internal string DisplayName { get; }

    /// <summary>What a log-only match of this rule would have done, for its log line (built once, not per query).</summary>
    internal string WouldDo { get; }

    internal bool IsLogOnly => Mode == RuleMode.LogOnly;

    /// <summary>
    /// Whether the rule applies to this session and message kind at all: its <c>user</c>, <c>database</c>,
    /// <c>application-name</c>, <c>client</c> and <c>protocol</c> conditions. The same for every statement of a message.
    /// </summary>
    /// <exception cref="RegexMatchTimeoutException">A <c>/pattern/</c> ran past the rule timeout.</exception>
    internal bool AppliesTo(in RuleSubject subject, QueryProtocol protocol)
    {
        RuleMatch match = Config.Match;
        return (match.Protocol is not { } only || only == protocol)
            && AnyName(match.Users, subject.User)
            && AnyName(match.Databases, subject.Database)
            && AnyName(match.ApplicationNames, subject.ApplicationName)
            && InNetworks(match.Clients, subject.Client);
    }

    /// <summary>
    /// Whether the statement meets the rule's conditions on the statement itself (<c>query</c>, <c>fingerprint</c>,
    /// <c>statement</c>, <c>tables</c>, cheapest first), and the spans <c>query</c> matched outside literals and comments,
    /// all of them when the rule rewrites, else the first.
    /// </summary>
    /// <exception cref="RegexMatchTimeoutException">The <c>query</c> pattern ran past the rule timeout.</exception>
    internal bool Matches(StatementAnalysis statement, out List<Match>? spans)
    {
        RuleMatch match = Config.Match;
        spans = null;
        if (match.Query is { } query)
        {
            spans = FindSpans(query.Regex, statement, match.Anywhere, all: Config.Rewrite is not null);
            if (spans is null)
            {
                return false;
            }
        }

        if (match.Fingerprints.Count > 0 && (statement.Fingerprint is not { } fingerprint || !Contains(match.Fingerprints, fingerprint)))
        {
            return false;
        }

        if (match.Statements != StatementKinds.None && (statement.Kinds & match.Statements) == 0)
        {
            return false;
        }

        return match.Tables.Count == 0 || (statement.Relations is { } relations && NamesAny(match.Tables, relations));
    }

    /// <summary>The statement as this rule leaves it: rewritten, then tagged; or, for a refusal, the statement that raises it.</summary>
    internal string Apply(string text, List<Match>? spans)
    {
        if (Config.Refuse is { } refusal)
        {
            return RefusalStatements.RaiseError(refusal.SqlState, refusal.Message);
        }

        string result = text;
        if (Config.Rewrite is { } replacement && spans is { Count: > 0 })
        {
            var rewritten = new StringBuilder(text.Length + replacement.Length);
            int position = 0;
            foreach (Match span in spans)
            {
                rewritten.Append(text, position, span.Index - position).Append(span.Result(replacement));
                position = span.Index + span.Length;
            }

            result = rewritten.Append(text, position, text.Length - position).ToString();
        }

        return Config.Tag is { } tag ? $"/* {tag} */ {result}" : result;
    }

    /// <summary>
    /// The matches of <paramref name="regex"/> that start outside literals and comments (every match with
    /// <paramref name="anywhere"/>), left to right and not overlapping, as <see cref="Regex.Replace(string, string)"/>
    /// would replace them; a match passed over for starting inside a literal is looked for again one character on,
    /// so a real match that overlaps it is still found. Null when there is none.
    /// </summary>
    private static List<Match>? FindSpans(Regex regex, StatementAnalysis statement, bool anywhere, bool all)
    {
        string text = statement.Text;
        List<Match>? spans = null;
        int start = 0;
        while (start <= text.Length)
        {
            Match match = regex.Match(text, start);
            if (!match.Success)
            {
                break;
            }

            if (!anywhere && statement.StartsInsideLiteralOrComment(match.Index))
            {
                start = match.Index + 1;
                continue;
            }

            (spans ??= []).Add(match);
            if (!all)
            {
                break;
            }

            start = match.Length == 0 ? match.Index + 1 : match.Index + match.Length;
        }

        return spans;
    }

    internal static bool AnyName(IReadOnlyList<NamePattern> patterns, string? name)
    {
        if (patterns.Count == 0)
        {
            return true;
        }

        if (name is null)
        {
            return false;
        }

        foreach (NamePattern pattern in patterns)
        {
            if (pattern.IsMatch(name))
            {
                return true;
            }
        }

        return false;
    }

    internal static bool InNetworks(IReadOnlyList<IPNetwork> networks, IPAddress? client)
    {
        if (networks.Count == 0)
        {
            return true;
        }

        if (client is null)
        {
            return false;
        }

        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; the configuration names them as IPv4.
        IPAddress address = client.IsIPv4MappedToIPv6 ? client.MapToIPv4() : client;
        foreach (IPNetwork network in networks)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    private static bool Contains(IReadOnlyList<string> values, string value)
    {
        foreach (string candidate in values)
        {
            if (string.Equals(candidate, value, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Whether a relation the statement names is one of the rule's tables. A table without a schema in the rule matches
    /// the relation in any schema. A relation without a schema in the statement is taken to be in <c>public</c>, the first
    /// schema of PostgreSQL's default search_path: <c>public.orders</c> matches <c>orders</c> too. (Only the server knows a
    /// session's real search_path; a rule on another schema's table should name it unqualified, or be paired with one.)
    /// </summary>
    private static bool NamesAny(IReadOnlyList<TableName> tables, IReadOnlyList<RelationReference> relations)
    {
        foreach (RelationReference relation in relations)
        {
            foreach (TableName table in tables)
            {
                if (string.Equals(table.Name, relation.Name, StringComparison.Ordinal)
                    && (table.Schema is null || string.Equals(table.Schema, relation.Schema ?? "public", StringComparison.Ordinal)))
                {
                    return true;
                }
            }
        }

        return false;
    }
}
