using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace PgProxy.Core.Configuration;

/// <summary>
/// Reads <c>instances[].rules</c>. Everything that can be wrong with a rule is found here, with its line: a regular
/// expression that does not compile, a SQLSTATE that is not one, a CIDR that does not parse, an unknown statement kind,
/// a rule without an action, two rules of one name. What reaches the rule engine (<c>Rules.RuleSet</c>) cannot fail to build.
/// </summary>
internal static class RulesConfigReader
{
    private static readonly string[] RuleKeys = ["name", "match", "refuse", "rewrite", "tag", "log", "mode", "continue"];

    private static readonly string[] MatchKeys =
        ["statement", "user", "database", "application-name", "client", "protocol", "tables", "fingerprint", "query", "anywhere"];

    private static readonly string[] RefuseKeys = ["sqlstate", "message"];

    /// <summary><c>mode</c> and <c>settings.rules-mode</c>.</summary>
    public static IReadOnlyDictionary<string, RuleMode> RuleModes { get; } =
        new Dictionary<string, RuleMode>(StringComparer.OrdinalIgnoreCase)
        {
            ["enforce"] = RuleMode.Enforce,
            ["log-only"] = RuleMode.LogOnly,
        };

    public static IReadOnlyDictionary<string, QueryProtocol> Protocols { get; } =
        new Dictionary<string, QueryProtocol>(StringComparer.OrdinalIgnoreCase)
        {
            ["simple"] = QueryProtocol.Simple,
            ["extended"] = QueryProtocol.Extended,
        };

    /// <summary>The names of <c>match.statement</c>, in the order the documentation lists them.</summary>
    public static IReadOnlyDictionary<string, StatementKinds> StatementKindNames { get; } =
        new Dictionary<string, StatementKinds>(StringComparer.OrdinalIgnoreCase)
        {
            ["select"] = StatementKinds.Select,
            ["insert"] = StatementKinds.Insert,
            ["update"] = StatementKinds.Update,
            ["delete"] = StatementKinds.Delete,
            ["merge"] = StatementKinds.Merge,
            ["ddl"] = StatementKinds.Ddl,
            ["copy"] = StatementKinds.Copy,
            ["transaction"] = StatementKinds.Transaction,
            ["set"] = StatementKinds.Set,
            ["utility"] = StatementKinds.Utility,
        };

    /// <summary>The rules of one instance, in file order; a rule with errors is reported and left out.</summary>
    /// <param name="reader">Collects the errors.</param>
    /// <param name="node">The <c>rules</c> value; null when absent.</param>
    /// <param name="ruleTimeout"><c>settings.rule-timeout</c>: every regular expression is compiled with it.</param>
    public static IReadOnlyList<RuleConfig> Read(ConfigNodeReader reader, ConfigNode? node, TimeSpan ruleTimeout)
    {
        var rules = new List<RuleConfig>();
        if (node is not { } list)
        {
            return rules;
        }

        // Where each name was first used, to point at it when a later rule takes it again.
        var namesSeen = new Dictionary<string, ConfigNode>(StringComparer.Ordinal);
        foreach (ConfigNode item in reader.Sequence(list))
        {
            int errorsBefore = reader.Errors.Count;
            RuleConfig? rule = ReadRule(reader, item, ruleTimeout, out ConfigNode? nameNode);
            if (rule is not null && nameNode is { } named)
            {
                if (namesSeen.TryGetValue(rule.Name, out ConfigNode first))
                {
                    reader.Report(named, $"rule name '{rule.Name}' is already used by {first.Path} (line {first.Owner.Line})");
                }
                else
                {
                    namesSeen.Add(rule.Name, named);
                }
            }

            if (rule is not null && reader.Errors.Count == errorsBefore)
            {
                rules.Add(rule);
            }
        }

        return rules;
    }

    private static RuleConfig? ReadRule(ConfigNodeReader reader, ConfigNode item, TimeSpan ruleTimeout, out ConfigNode? nameNode)
    {
        nameNode = null;
        if (item.Node is not YamlMappingNode)
        {
            reader.Report(item, $"expected a rule (a mapping with keys {string.Join(", ", RuleKeys)}), got {ConfigNodeReader.Describe(item.Node)}");
            return null;
        }

        ConfigMapping mapping = reader.Mapping(item, RuleKeys);
        nameNode = mapping.Required("name");
        string? name = nameNode is { } nameValue ? reader.Text(nameValue) : null;
        ConfigNode? matchNode = mapping.Required("match");
        RuleMatch? match = matchNode is { } matchValue ? ReadMatch(reader, matchValue, ruleTimeout) : null;
        ConfigNode? refuseNode = mapping.Optional("refuse");
        ConfigNode? rewriteNode = mapping.Optional("rewrite");
        ConfigNode? tagNode = mapping.Optional("tag");
        ConfigNode? continueNode = mapping.Optional("continue");
        RuleRefusal? refusal = refuseNode is { } refuse ? ReadRefusal(reader, refuse, name) : null;
        string? rewrite = rewriteNode is { } rewriteValue ? ReadReplacement(reader, rewriteValue, match?.Query) : null;
        string? tag = tagNode is { } tagValue ? ReadTag(reader, tagValue) : null;
        ConfigNode? logNode = mapping.Optional("log");
        bool? logValue = logNode is { } logKey ? reader.Boolean(logKey) : false;
        bool log = logValue == true;
        RuleMode mode = mapping.Optional("mode") is { } modeNode ? reader.Choice(modeNode, RuleModes) ?? RuleMode.Enforce : RuleMode.Enforce;
        bool continues = continueNode is { } continueValue && reader.Boolean(continueValue) == true;

        // A malformed log value is reported as such, not also as a missing action.
        if (refuseNode is null && rewriteNode is null && tagNode is null && logValue == false)
        {
            reader.Report(item, "a rule needs at least one action: refuse, rewrite, tag or log: true");
        }

        if (refuseNode is not null && (rewriteNode is not null || tagNode is not null))
        {
            reader.Report(refuseNode.Value.Path, refuseNode.Value.Owner, "refuse cannot be combined with rewrite or tag: a refused statement does not run");
        }

        if (refuseNode is not null && continues)
        {
            reader.Report(continueNode!.Value.Path, continueNode.Value.Owner, "continue has no effect on a rule that refuses: no later rule sees a refused statement");
        }

        if (rewriteNode is { } rewriteKey && !HasQueryKey(matchNode))
        {
            reader.Report(rewriteKey.Path, rewriteKey.Owner, "rewrite replaces what match.query matches; this rule has no match.query");
        }

        if (name is null || match is null)
        {
            return null;
        }

        return new RuleConfig(name, ConfigNodeReader.LineOf(item.Node))
        {
            Match = match,
            Refuse = refusal,
            Rewrite = rewrite,
            Tag = tag,
            Log = log,
            Mode = mode,
            Continue = continues,
        };
    }

    /// <summary>Whether <c>match</c> has a <c>query</c> key at all (one that fails to compile is reported once, not twice).</summary>
    private static bool HasQueryKey(ConfigNode? match) =>
        match is { Node: YamlMappingNode mapping } && mapping.Children.Keys.Any(key => key is YamlScalarNode { Value: "query" });

    private static RuleMatch ReadMatch(ConfigNodeReader reader, ConfigNode node, TimeSpan ruleTimeout)
    {
        ConfigMapping mapping = reader.Mapping(node, MatchKeys);
        var statements = StatementKinds.None;
        foreach (ConfigNode item in Items(reader, mapping.Optional("statement")))
        {
            statements |= reader.Choice(item, StatementKindNames) ?? StatementKinds.None;
        }

        ConfigNode? queryNode = mapping.Optional("query");
        RulePattern? query = null;
        if (queryNode is { } queryValue && reader.Text(queryValue) is { } pattern)
        {
            if (CompileRegex(pattern, ruleTimeout, out string? problem) is { } regex)
            {
                query = new RulePattern(pattern, regex);
            }
            else
            {
                reader.Report(queryValue, $"invalid regular expression: {problem}");
            }
        }

        ConfigNode? anywhereNode = mapping.Optional("anywhere");
        bool anywhere = anywhereNode is { } anywhereValue && reader.Boolean(anywhereValue) == true;
        if (anywhereNode is { } anywhereKey && queryNode is null)
        {
            reader.Report(anywhereKey.Path, anywhereKey.Owner, "anywhere applies to match.query, which this rule does not have");
        }

        return new RuleMatch
        {
            Statements = statements,
            Users = ReadNames(reader, mapping.Optional("user"), ruleTimeout),
            Databases = ReadNames(reader, mapping.Optional("database"), ruleTimeout),
            ApplicationNames = ReadNames(reader, mapping.Optional("application-name"), ruleTimeout),
            Clients = ReadNetworks(reader, mapping.Optional("client")),
            Protocol = mapping.Optional("protocol") is { } protocol ? reader.Choice(protocol, Protocols) : null,
            Tables = ReadTables(reader, mapping.Optional("tables")),
            Fingerprints = ReadFingerprints(reader, mapping.Optional("fingerprint")),
            Query = query,
            Anywhere = anywhere,
        };
    }

    /// <summary>A list, or a single value standing for a list of one (<c>user: app</c> as <c>user: [app]</c>).</summary>
    internal static IReadOnlyList<ConfigNode> Items(ConfigNodeReader reader, ConfigNode? node) => node switch
    {
        null => [],
        { Node: YamlScalarNode } single => [single],
        { } list => reader.Sequence(list),
    };

    internal static List<NamePattern> ReadNames(ConfigNodeReader reader, ConfigNode? node, TimeSpan ruleTimeout)
    {
        var names = new List<NamePattern>();
        foreach (ConfigNode item in Items(reader, node))
        {
            if (reader.Text(item) is not { } text)
            {
                continue;
            }

            if (text.Length >= 2 && text[0] == '/' && text[^1] == '/')
            {
                if (CompileRegex(text[1..^1], ruleTimeout, out string? problem) is { } regex)
                {
                    names.Add(new NamePattern(text, regex));
                }
                else
                {
                    reader.Report(item, $"invalid regular expression: {problem}");
                }
            }
            else
            {
                names.Add(new NamePattern(text, regex: null));
            }
        }

        return names;
    }

    internal static List<IPNetwork> ReadNetworks(ConfigNodeReader reader, ConfigNode? node)
    {
        var networks = new List<IPNetwork>();
        foreach (ConfigNode item in Items(reader, node))
        {
            if (reader.Text(item) is not { } text)
            {
                continue;
            }

            if (TryParseNetwork(text.Trim(), out IPNetwork network, out string? problem))
            {
                networks.Add(network);
            }
            else
            {
                reader.Report(item, problem!);
            }
        }

        return networks;
    }

    /// <summary>
    /// A CIDR (<c>10.0.0.0/8</c>, <c>2001:db8::/32</c>) or a single address. Host bits beyond the prefix are refused, as a
    /// likely typo, rather than quietly masked. An IPv4-mapped IPv6 network (<c>::ffff:10.0.0.0/104</c>) is kept as the
    /// IPv4 network it maps, since client addresses are compared in their IPv4 form.
    /// </summary>
    internal static bool TryParseNetwork(string text, out IPNetwork network, out string? problem)
    {
        network = default;
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        string addressText = slash < 0 ? text : text[..slash];
        // IPAddress.TryParse reads "10" as 0.0.0.10 and "10.1" as 10.0.0.1: an IPv4 address must have its four parts.
        bool looksLikeIpv4 = !addressText.Contains(':', StringComparison.Ordinal);
        if ((looksLikeIpv4 && addressText.Count(c => c == '.') != 3) || !IPAddress.TryParse(addressText, out IPAddress? address))
        {
            problem = $"expected a CIDR such as 10.0.0.0/8 or 2001:db8::/32, or an IP address, got '{text}'";
            return false;
        }

        int maximum = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        int prefix = maximum;
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > maximum))
        {
            problem = $"expected a prefix length from 0 to {maximum} after '/', got '{text}'";
            return false;
        }

        IPAddress masked = Mask(address, prefix);
        if (!masked.Equals(address))
        {
            problem = $"'{text}' has bits set beyond its /{prefix} prefix; the network is {masked}/{prefix}";
            return false;
        }

        network = address.IsIPv4MappedToIPv6 && prefix >= 96
            ? new IPNetwork(address.MapToIPv4(), prefix - 96)
            : new IPNetwork(address, prefix);
        problem = null;
        return true;
    }

    private static IPAddress Mask(IPAddress address, int prefix)
    {
        byte[] bytes = address.GetAddressBytes();
        for (int bit = prefix; bit < bytes.Length * 8; bit++)
        {
            bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }

        return new IPAddress(bytes);
    }

    private static List<TableName> ReadTables(ConfigNodeReader reader, ConfigNode? node)
    {
        var tables = new List<TableName>();
        foreach (ConfigNode item in Items(reader, node))
        {
            if (reader.Text(item) is not { } text)
            {
                continue;
            }

            if (TryParseTableName(text.Trim(), out TableName? table))
            {
                tables.Add(table);
            }
            else
            {
                reader.Report(item, $"expected a relation name, table or schema.table (double quotes keep letter case and dots), got '{text}'");
            }
        }

        return tables;
    }

    /// <summary>
    /// <c>orders</c>, <c>public.orders</c>, <c>"Sales"."Order Lines"</c>: read as PostgreSQL reads a name in SQL, so that
    /// the rule names what the statement names. Unquoted parts fold to lower case (ASCII letters only, as PostgreSQL
    /// folds them in UTF-8); quoted parts are kept, with <c>""</c> for a quote.
    /// </summary>
    internal static bool TryParseTableName(string text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TableName? table)
    {
        table = null;
        if (!TrySplitQualifiedName(text, allowWildcards: false, out List<string?> parts))
        {
            return false;
        }

        table = parts.Count switch
        {
            1 => new TableName(null, parts[0]!),
            2 => new TableName(parts[0], parts[1]!),
            _ => null,
        };
        return table is not null;
    }

    /// <summary>
    /// Splits a dotted name as PostgreSQL reads one in SQL: unquoted parts fold to lower case (ASCII letters only, as
    /// PostgreSQL folds them in UTF-8); quoted parts are kept, with <c>""</c> for a quote. With
    /// <paramref name="allowWildcards"/>, an unquoted <c>*</c> part is a wildcard, returned as null.
    /// </summary>
    internal static bool TrySplitQualifiedName(string text, bool allowWildcards, out List<string?> parts)
    {
        parts = new List<string?>(3);
        int index = 0;
        while (true)
        {
            if (index < text.Length && text[index] == '"')
            {
                var quoted = new StringBuilder();
                int position = index + 1;
                while (true)
                {
                    int close = text.IndexOf('"', position);
                    if (close < 0)
                    {
                        return false;
                    }

                    quoted.Append(text, position, close - position);
                    if (close + 1 < text.Length && text[close + 1] == '"')
                    {
                        quoted.Append('"');
                        position = close + 2;
                        continue;
                    }

                    index = close + 1;
                    break;
                }

                if (quoted.Length == 0)
                {
                    return false;
                }

                parts.Add(quoted.ToString());
            }
            else
            {
                int end = text.IndexOf('.', index);
                end = end < 0 ? text.Length : end;
                ReadOnlySpan<char> plain = text.AsSpan(index, end - index);
                if (plain.IsEmpty || plain.ContainsAny('"', ' ', '\t'))
                {
                    return false;
                }

                if (plain is "*")
                {
                    if (!allowWildcards)
                    {
                        return false;
                    }

                    parts.Add(null);
                }
                else
                {
                    var folded = new StringBuilder(plain.Length);
                    foreach (char c in plain)
                    {
                        folded.Append(char.IsAsciiLetterUpper(c) ? (char)(c + ('a' - 'A')) : c);
                    }

                    parts.Add(folded.ToString());
                }

                index = end;
            }

            if (index == text.Length)
            {
                return true;
            }

            if (text[index] != '.' || index + 1 == text.Length)
            {
                return false;
            }

            index++;
        }
    }

    private static List<string> ReadFingerprints(ConfigNodeReader reader, ConfigNode? node)
    {
        var fingerprints = new List<string>();
        foreach (ConfigNode item in Items(reader, node))
        {
            if (reader.Text(item) is not { } text)
            {
                continue;
            }

            string trimmed = text.Trim();
            if (trimmed.Length == 16 && trimmed.All(char.IsAsciiHexDigit))
            {
                fingerprints.Add(trimmed.ToLowerInvariant());
            }
            else
            {
                reader.Report(item, $"expected a fingerprint of 16 hexadecimal digits, as 'pgproxy fingerprint' prints it, got '{text}'");
            }
        }

        return fingerprints;
    }

    private static RuleRefusal? ReadRefusal(ConfigNodeReader reader, ConfigNode node, string? ruleName)
    {
        ConfigMapping mapping = reader.Mapping(node, RefuseKeys);
        string sqlState = RuleRefusal.DefaultSqlState;
        if (mapping.Optional("sqlstate") is { } sqlStateNode && reader.Text(sqlStateNode) is { } text)
        {
            if (text.Length == 5 && text.All(c => char.IsAsciiDigit(c) || char.IsAsciiLetterUpper(c)))
            {
                sqlState = text;
            }
            else
            {
                reader.Report(sqlStateNode, $"expected a SQLSTATE: five digits or upper-case letters such as '42501', got '{text}'");
                return null;
            }
        }

        string message = mapping.Optional("message") is { } messageNode
            ? reader.Text(messageNode) ?? ""
            : $"refused by PgProxy rule \"{ruleName}\"";
        return new RuleRefusal(sqlState, message);
    }

    /// <summary>
    /// The replacement of <c>rewrite</c>: any text, the empty string included (to delete what the pattern matched). A
    /// <c>${name}</c> that names no group of the pattern is refused: .NET would insert it literally, which is never what a
    /// rewrite of SQL wants. (<c>$1</c> with no group 1 stays literal, as in .NET, since <c>$1</c> is also a SQL parameter.)
    /// </summary>
    private static string? ReadReplacement(ConfigNodeReader reader, ConfigNode node, RulePattern? pattern)
    {
        if (node.Node is not YamlScalarNode { Value: { } replacement })
        {
            reader.Report(node, $"expected the replacement text, got {ConfigNodeReader.Describe(node.Node)}");
            return null;
        }

        if (pattern is not null)
        {
            for (int index = 0; index < replacement.Length - 1; index++)
            {
                if (replacement[index] != '$')
                {
                    continue;
                }

                if (replacement[index + 1] == '$')
                {
                    index++;
                    continue;
                }

                int close = replacement[index + 1] == '{' ? replacement.IndexOf('}', index + 2) : -1;
                if (close > index + 2)
                {
                    string group = replacement[(index + 2)..close];
                    if (pattern.Regex.GroupNumberFromName(group) < 0)
                    {
                        reader.Report(node, $"${{{group}}} names no group of match.query; its groups are {string.Join(", ", pattern.Regex.GetGroupNames())}");
                        return null;
                    }

                    index = close;
                }
            }
        }

        return replacement;
    }

    private static string? ReadTag(ConfigNodeReader reader, ConfigNode node)
    {
        if (reader.Text(node) is not { } tag)
        {
            return null;
        }

        // The tag is written inside /* ... */: a "*/" would end the comment early and put the rest of the tag into the
        // statement, and a "/*" would open a nested comment (PostgreSQL's comments nest) that swallows the statement.
        if (tag.Contains("*/", StringComparison.Ordinal) || tag.Contains("/*", StringComparison.Ordinal))
        {
            reader.Report(node, "a tag cannot hold '*/' or '/*': it is written inside a /* */ comment, which they would end or nest");
            return null;
        }

        return tag;
    }

    /// <summary>
    /// Compiles a rule's regular expression: with the linear-time engine when the pattern allows it (no backreferences,
    /// lookarounds, atomic groups or conditionals), else with the backtracking engine. Both get
    /// <paramref name="timeout"/>: the linear engine cannot run away, but a huge query can still take long.
    /// </summary>
    /// <returns>The expression, or null with <paramref name="problem"/> saying why it does not compile.</returns>
    internal static Regex? CompileRegex(string pattern, TimeSpan timeout, out string? problem)
    {
        problem = null;
        try
        {
            return new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.NonBacktracking, timeout);
        }
        catch (NotSupportedException)
        {
            // A construct only the backtracking engine has: compile it for that engine below.
        }
        catch (ArgumentException exception)
        {
            problem = exception.Message;
            return null;
        }

        try
        {
            return new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled, timeout);
        }
        catch (ArgumentException exception)
        {
            problem = exception.Message;
            return null;
        }
    }
}
