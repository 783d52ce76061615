using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace PgProxy.Core.Configuration;

/// <summary>
/// Reads <c>instances[].masks</c>. What the file alone can tell is checked here, with its line: keys, the function and
/// its argument (a pattern that does not compile, a keep-last that is not a count), column names, two masks of one name,
/// one column named by two masks. Column types are not in the file: a function that cannot keep a column's type is
/// found when the proxy reads the catalog (<c>Masks.MaskCatalog</c>), reported there with the mask's name and line.
/// </summary>
internal static class MasksConfigReader
{
    private static readonly string[] MaskKeys = ["name", "columns", "with", "unless", "computed", "copy", "mode"];

    private static readonly string[] UnlessKeys = ["user", "database", "application-name", "client"];

    private static readonly string[] ConstantKeys = ["constant"];

    private static readonly string[] KeepLastKeys = ["keep-last"];

    private static readonly string[] RegexKeys = ["regex", "replace"];

    public static IReadOnlyDictionary<string, MaskPolicy> Policies { get; } =
        new Dictionary<string, MaskPolicy>(StringComparer.OrdinalIgnoreCase)
        {
            ["refuse"] = MaskPolicy.Refuse,
            ["pass"] = MaskPolicy.Pass,
        };

    private static readonly IReadOnlyDictionary<string, MaskFunctionKind> PlainFunctions =
        new Dictionary<string, MaskFunctionKind>(StringComparer.OrdinalIgnoreCase)
        {
            ["null"] = MaskFunctionKind.Null,
            ["hash"] = MaskFunctionKind.Hash,
            ["email"] = MaskFunctionKind.Email,
        };

    /// <summary>The masks of one instance, in file order; a mask with errors is reported and left out.</summary>
    /// <param name="reader">Collects the errors.</param>
    /// <param name="node">The <c>masks</c> value; null when absent.</param>
    /// <param name="ruleTimeout"><c>settings.rule-timeout</c>: <c>regex</c> patterns are compiled with it.</param>
    public static IReadOnlyList<MaskConfig> Read(ConfigNodeReader reader, ConfigNode? node, TimeSpan ruleTimeout)
    {
        var masks = new List<MaskConfig>();
        if (node is not { } list)
        {
            return masks;
        }

        var namesSeen = new Dictionary<string, ConfigNode>(StringComparer.Ordinal);
        var columnsSeen = new Dictionary<MaskColumn, (string Mask, int Line)>();
        foreach (ConfigNode item in reader.Sequence(list))
        {
            int errorsBefore = reader.Errors.Count;
            MaskConfig? mask = ReadMask(reader, item, ruleTimeout, out ConfigNode? nameNode, out IReadOnlyList<(MaskColumn Column, ConfigNode Node)> columns);
            if (mask is not null && nameNode is { } named)
            {
                if (namesSeen.TryGetValue(mask.Name, out ConfigNode first))
                {
                    reader.Report(named, $"mask name '{mask.Name}' is already used by {first.Path} (line {first.Owner.Line})");
                }
                else
                {
                    namesSeen.Add(mask.Name, named);
                }

                // The same column under two masks would leave which one applies to the list's order: say it instead.
                foreach ((MaskColumn column, ConfigNode columnNode) in columns)
                {
                    if (columnsSeen.TryGetValue(column, out (string Mask, int Line) other))
                    {
                        reader.Report(columnNode, $"column {column} is already masked by '{other.Mask}' (line {other.Line}); a column takes one mask");
                    }
                    else
                    {
                        columnsSeen.Add(column, (mask.Name, mask.Line));
                    }
                }
            }

            if (mask is not null && reader.Errors.Count == errorsBefore)
            {
                masks.Add(mask);
            }
        }

        return masks;
    }

    private static MaskConfig? ReadMask(
        ConfigNodeReader reader, ConfigNode item, TimeSpan ruleTimeout, out ConfigNode? nameNode, out IReadOnlyList<(MaskColumn Column, ConfigNode Node)> columns)
    {
        nameNode = null;
        columns = [];
        if (item.Node is not YamlMappingNode)
        {
            reader.Report(item, $"expected a mask (a mapping with keys {string.Join(", ", MaskKeys)}), got {ConfigNodeReader.Describe(item.Node)}");
            return null;
        }

        ConfigMapping mapping = reader.Mapping(item, MaskKeys);
        nameNode = mapping.Required("name");
        string? name = nameNode is { } nameValue ? reader.Text(nameValue) : null;
        ConfigNode? columnsNode = mapping.Required("columns");
        columns = columnsNode is { } columnList ? ReadColumns(reader, columnList) : [];
        MaskFunction? function = mapping.Optional("with") is { } withNode ? ReadFunction(reader, withNode, ruleTimeout) : new MaskFunction(MaskFunctionKind.Null);
        MaskExemption unless = mapping.Optional("unless") is { } unlessNode ? ReadUnless(reader, unlessNode, ruleTimeout) : MaskExemption.Nobody;
        MaskPolicy computed = mapping.Optional("computed") is { } computedNode ? reader.Choice(computedNode, Policies) ?? MaskPolicy.Refuse : MaskPolicy.Refuse;
        MaskPolicy copy = mapping.Optional("copy") is { } copyNode ? reader.Choice(copyNode, Policies) ?? MaskPolicy.Refuse : MaskPolicy.Refuse;
        RuleMode mode = mapping.Optional("mode") is { } modeNode ? reader.Choice(modeNode, RulesConfigReader.RuleModes) ?? RuleMode.Enforce : RuleMode.Enforce;
        if (columnsNode is { } given && columns.Count == 0 && !given.IsNull && given.Node is YamlSequenceNode { Children.Count: 0 })
        {
            reader.Report(given, "a mask needs at least one column");
        }

        if (name is null || function is null || columns.Count == 0)
        {
            return null;
        }

        return new MaskConfig(name, ConfigNodeReader.LineOf(item.Node), [.. columns.Select(column => column.Column)], function)
        {
            Unless = unless,
            Computed = computed,
            Copy = copy,
            Mode = mode,
        };
    }

    private static List<(MaskColumn, ConfigNode)> ReadColumns(ConfigNodeReader reader, ConfigNode node)
    {
        var columns = new List<(MaskColumn, ConfigNode)>();
        foreach (ConfigNode item in RulesConfigReader.Items(reader, node))
        {
            if (reader.Text(item) is not { } text)
            {
                continue;
            }

            if (TryParseColumn(text.Trim(), out MaskColumn? column))
            {
                columns.Add((column, item));
            }
            else
            {
                reader.Report(item, $"expected a column as schema.table.column, table.column or *.column (double quotes keep letter case and dots), got '{text}'");
            }
        }

        return columns;
    }

    /// <summary><c>public.customers.email</c>, <c>customers.email</c>, <c>*.email</c>, <c>*.*.email</c>, <c>"Sales".*.email</c>.</summary>
    internal static bool TryParseColumn(string text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out MaskColumn? column)
    {
        column = null;
        if (!RulesConfigReader.TrySplitQualifiedName(text, allowWildcards: true, out List<string?> parts) || parts.Count is < 2 or > 3 || parts[^1] is not { } name)
        {
            return false;
        }

        column = parts.Count == 3 ? new MaskColumn(parts[0], parts[1], name) : new MaskColumn(null, parts[0], name);
        return true;
    }

    private static MaskFunction? ReadFunction(ConfigNodeReader reader, ConfigNode node, TimeSpan ruleTimeout)
    {
        if (node.Node is YamlScalarNode)
        {
            return reader.Choice(node, PlainFunctions) is { } kind ? new MaskFunction(kind) : null;
        }

        if (node.Node is not YamlMappingNode mappingNode || mappingNode.Children.Count == 0)
        {
            reader.Report(node, $"expected null, hash, email, {{constant: TEXT}}, {{keep-last: N}} or {{regex: PATTERN, replace: TEXT}}, got {ConfigNodeReader.Describe(node.Node)}");
            return null;
        }

        string first = (mappingNode.Children.Keys.First() as YamlScalarNode)?.Value ?? "";
        switch (first)
        {
            case "constant":
                return ReadConstant(reader, node);
            case "keep-last":
                ConfigMapping keepLast = reader.Mapping(node, KeepLastKeys);
                return keepLast.Required("keep-last") is { } count && reader.Integer(count, 0, 1_000_000) is { } kept
                    ? new MaskFunction(MaskFunctionKind.KeepLast) { KeepLast = kept }
                    : null;
            case "regex" or "replace":
                return ReadRegex(reader, node, ruleTimeout);
            default:
                reader.Report(node, string.Create(CultureInfo.InvariantCulture, $"unknown mask function '{first}'; expected null, hash, email, {{constant: TEXT}}, {{keep-last: N}} or {{regex: PATTERN, replace: TEXT}}"));
                return null;
        }
    }

    private static MaskFunction? ReadConstant(ConfigNodeReader reader, ConfigNode node)
    {
        ConfigMapping mapping = reader.Mapping(node, ConstantKeys);

        // The empty string is a fine constant (quoted: ''); only a missing value, a list or a mapping is not.
        ConfigNode? value = mapping.Required("constant");
        return value is { Node: YamlScalarNode { Value: { } text } } ? new MaskFunction(MaskFunctionKind.Constant) { Constant = text }
            : value is { } wrong ? Fail(reader, wrong, "expected the constant text") : null;
    }

    private static MaskFunction? ReadRegex(ConfigNodeReader reader, ConfigNode node, TimeSpan ruleTimeout)
    {
        ConfigMapping mapping = reader.Mapping(node, RegexKeys);
        ConfigNode? patternNode = mapping.Required("regex");
        ConfigNode? replaceNode = mapping.Required("replace");
        if (patternNode is not { } patternValue || reader.Text(patternValue) is not { } pattern)
        {
            return null;
        }

        if (RulesConfigReader.CompileRegex(pattern, ruleTimeout, out string? problem) is not { } regex)
        {
            reader.Report(patternValue, $"invalid regular expression: {problem}");
            return null;
        }

        if (replaceNode is not { Node: YamlScalarNode { Value: { } replacement } })
        {
            return replaceNode is { } wrong ? Fail(reader, wrong, "expected the replacement text") : null;
        }

        return new MaskFunction(MaskFunctionKind.Regex) { Pattern = regex, Replacement = replacement };
    }

    private static MaskFunction? Fail(ConfigNodeReader reader, ConfigNode node, string expectation)
    {
        reader.Report(node, $"{expectation}, got {ConfigNodeReader.Describe(node.Node)}");
        return null;
    }

    private static MaskExemption ReadUnless(ConfigNodeReader reader, ConfigNode node, TimeSpan ruleTimeout)
    {
        ConfigMapping mapping = reader.Mapping(node, UnlessKeys);
        return new MaskExemption
        {
            Users = RulesConfigReader.ReadNames(reader, mapping.Optional("user"), ruleTimeout),
            Databases = RulesConfigReader.ReadNames(reader, mapping.Optional("database"), ruleTimeout),
            ApplicationNames = RulesConfigReader.ReadNames(reader, mapping.Optional("application-name"), ruleTimeout),
            Clients = RulesConfigReader.ReadNetworks(reader, mapping.Optional("client")),
        };
    }
}
