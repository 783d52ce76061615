using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PgProxy.Core.Configuration;

/// <summary>A YAML node with the key path it was found at and the position to blame when something inside it is missing.</summary>
/// <param name="Node">The value node.</param>
/// <param name="Path">Key path, e.g. <c>instances[0].listen</c>.</param>
/// <param name="Owner">Position of the key (or list item) that introduced the value: "missing key" errors point here.</param>
internal readonly record struct ConfigNode(YamlNode Node, string Path, Mark Owner)
{
    /// <summary>YAML's null: an empty value, <c>~</c> or <c>null</c>, unquoted. The seed's <c>connects:</c> is one.</summary>
    public bool IsNull => Node is YamlScalarNode { Style: ScalarStyle.Plain, Value: "" or "~" or "null" or "Null" or "NULL" };
}

/// <summary>
/// Typed reads of configuration nodes. Each read that fails records an error and returns null instead of
/// throwing, so one pass over the file finds every problem.
/// </summary>
internal sealed class ConfigNodeReader
{
    private readonly List<ConfigError> _errors = [];

    /// <summary>Errors in file order, whatever order they were found in.</summary>
    public IReadOnlyList<ConfigError> Errors =>
        [.. _errors.OrderBy(error => error.Line).ThenBy(error => error.Column)];

    public bool HasErrors => _errors.Count > 0;

    public void Report(string keyPath, Mark position, string message) =>
        _errors.Add(new ConfigError(keyPath, ToInt(position.Line), ToInt(position.Column), message));

    public void Report(ConfigNode node, string message) => Report(node.Path, node.Node.Start, message);

    public static int LineOf(YamlNode node) => ToInt(node.Start.Line);

    /// <summary>A mapping restricted to <paramref name="allowedKeys"/>; anything else is reported as unknown. Null reads as empty.</summary>
    public ConfigMapping Mapping(ConfigNode node, IReadOnlyList<string> allowedKeys)
    {
        if (node.IsNull)
        {
            return new ConfigMapping(this, node, allowedKeys, [], isValid: true);
        }

        if (node.Node is not YamlMappingNode mapping)
        {
            Report(node, $"expected a mapping with keys {string.Join(", ", allowedKeys)}, got {Describe(node.Node)}");
            return new ConfigMapping(this, node, allowedKeys, [], isValid: false);
        }

        var entries = new Dictionary<string, ConfigNode>(StringComparer.Ordinal);
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            if (keyNode is not YamlScalarNode { Value: { } key })
            {
                Report(node.Path, keyNode.Start, "keys must be plain names, not lists or mappings");
                continue;
            }

            var keyPath = node.Path.Length == 0 ? key : $"{node.Path}.{key}";
            if (!allowedKeys.Contains(key, StringComparer.Ordinal))
            {
                Report(keyPath, keyNode.Start, UnknownKeyMessage(key, allowedKeys));
                continue;
            }

            entries[key] = new ConfigNode(valueNode, keyPath, keyNode.Start);
        }

        return new ConfigMapping(this, node, allowedKeys, entries, isValid: true);
    }

    /// <summary>The items of a list, each with its indexed path. Null reads as empty.</summary>
    public IReadOnlyList<ConfigNode> Sequence(ConfigNode node)
    {
        if (node.IsNull)
        {
            return [];
        }

        if (node.Node is not YamlSequenceNode sequence)
        {
            Report(node, $"expected a list, got {Describe(node.Node)}");
            return [];
        }

        return [.. sequence.Children.Select((item, index) => new ConfigNode(item, $"{node.Path}[{index}]", item.Start))];
    }

    /// <summary>A non-empty string. Any scalar counts: a name such as <c>5432</c> is text here.</summary>
    public string? Text(ConfigNode node)
    {
        if (node.Node is YamlScalarNode { Value: { } value } && !node.IsNull && value.Trim().Length > 0)
        {
            return value;
        }

        Report(node, $"expected a non-empty string, got {Describe(node.Node)}");
        return null;
    }

    /// <summary>An integer within bounds. Quoted numbers are strings in YAML, so they are refused rather than guessed at.</summary>
    public int? Integer(ConfigNode node, int minimum, int maximum)
    {
        var expectation = maximum == int.MaxValue
            ? $"an integer of at least {minimum}"
            : $"an integer from {minimum} to {maximum}";

        if (node.Node is YamlScalarNode { Style: ScalarStyle.Plain, Value: { } text }
            && int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)
            && value >= minimum && value <= maximum)
        {
            return value;
        }

        var hint = node.Node is YamlScalarNode { Style: not ScalarStyle.Plain } ? " (a quoted value is a string; remove the quotes)" : "";
        Report(node, $"expected {expectation}, got {Describe(node.Node)}{hint}");
        return null;
    }

    /// <summary>A size in bytes (<c>1048576</c> or <c>100MB</c>) within bounds.</summary>
    public long? Size(ConfigNode node, long minimum, long maximum)
    {
        if (node.Node is YamlScalarNode { Value: { } text }
            && ConfigValueParsers.TryParseSize(text, out var bytes)
            && bytes >= minimum && bytes <= maximum)
        {
            return bytes;
        }

        var range = maximum switch
        {
            long.MaxValue => $"of at least {ConfigValueParsers.FormatSize(minimum)}",
            _ when maximum % ConfigValueParsers.Kilobyte == 0 => $"from {ConfigValueParsers.FormatSize(minimum)} to {ConfigValueParsers.FormatSize(maximum)}",
            _ => $"from {ConfigValueParsers.FormatSize(minimum)} to {maximum} bytes",
        };
        Report(node, $"expected a size {range} (bytes, or with unit B, kB, MB or GB such as 100MB), got {Describe(node.Node)}");
        return null;
    }

    /// <summary>
    /// A duration (<c>30</c> seconds, or <c>500ms</c>, <c>10s</c>, <c>2m</c>, <c>1h</c>): above zero when
    /// <paramref name="mustBePositive"/>, else zero or more; at most <paramref name="maximum"/> when one is given.
    /// </summary>
    public TimeSpan? Duration(ConfigNode node, bool mustBePositive, TimeSpan? maximum = null)
    {
        if (node.Node is YamlScalarNode { Value: { } text }
            && ConfigValueParsers.TryParseDuration(text, out var duration)
            && (!mustBePositive || duration > TimeSpan.Zero)
            && (maximum is not { } most || duration <= most))
        {
            return duration;
        }

        var expectation = mustBePositive ? "a duration greater than zero" : "a duration";
        if (maximum is { } limit)
        {
            expectation += $" and at most {ConfigValueParsers.FormatDuration(limit)}";
        }

        Report(node, $"expected {expectation} (seconds, or with unit ms, s, m or h such as 10s), got {Describe(node.Node)}");
        return null;
    }

    /// <summary>
    /// <c>true</c> or <c>false</c>, unquoted (YAML's booleans, in any letter case). Quoted, or YAML 1.1's <c>yes</c>,
    /// <c>on</c> and the like, is refused: those are strings to a YAML 1.2 reader, so accepting them would make a file mean
    /// different things to different tools.
    /// </summary>
    public bool? Boolean(ConfigNode node)
    {
        if (node.Node is YamlScalarNode { Style: ScalarStyle.Plain, Value: { } text })
        {
            if (string.Equals(text, "true", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }

            if (string.Equals(text, "false", StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
        }

        var hint = node.Node is YamlScalarNode { Style: not ScalarStyle.Plain } ? " (a quoted value is a string; remove the quotes)" : "";
        Report(node, $"expected true or false, got {Describe(node.Node)}{hint}");
        return null;
    }

    /// <summary>One of a fixed set of names, case-insensitive.</summary>
    public T? Choice<T>(ConfigNode node, IReadOnlyDictionary<string, T> choices)
        where T : struct
    {
        if (node.Node is YamlScalarNode { Value: { } text } && choices.TryGetValue(text.Trim(), out var value))
        {
            return value;
        }

        Report(node, $"expected one of {string.Join(", ", choices.Keys)}, got {Describe(node.Node)}");
        return null;
    }

    /// <summary>How a value is shown in an error: the scalar itself, or what kind of node it is.</summary>
    public static string Describe(YamlNode node) => node switch
    {
        YamlScalarNode { Style: ScalarStyle.Plain, Value: "" or "~" or "null" or "Null" or "NULL" } => "nothing",
        YamlScalarNode scalar => $"'{scalar.Value}'",
        YamlSequenceNode => "a list",
        YamlMappingNode => "a mapping",
        _ => "an unsupported value",
    };

    private static string UnknownKeyMessage(string key, IReadOnlyList<string> allowedKeys)
    {
        // The original's keys are hyphenated; snake_case is the likeliest slip, so name the right spelling.
        var hyphenated = key.Replace('_', '-');
        if (!string.Equals(hyphenated, key, StringComparison.Ordinal) && allowedKeys.Contains(hyphenated, StringComparer.Ordinal))
        {
            return $"unknown key '{key}'; keys are hyphenated: did you mean '{hyphenated}'?";
        }

        return $"unknown key '{key}'; expected one of {string.Join(", ", allowedKeys)}";
    }

    private static int ToInt(long value) => value > int.MaxValue ? int.MaxValue : (int)value;
}

/// <summary>The known keys of one YAML mapping, read by name.</summary>
internal sealed class ConfigMapping
{
    private readonly ConfigNodeReader _reader;
    private readonly ConfigNode _node;
    private readonly IReadOnlyList<string> _allowedKeys;
    private readonly Dictionary<string, ConfigNode> _entries;
    private readonly bool _isValid;

    public ConfigMapping(
        ConfigNodeReader reader,
        ConfigNode node,
        IReadOnlyList<string> allowedKeys,
        Dictionary<string, ConfigNode> entries,
        bool isValid)
    {
        _reader = reader;
        _node = node;
        _allowedKeys = allowedKeys;
        _entries = entries;
        _isValid = isValid;
    }

    public string Path => _node.Path;

    /// <summary>Where the key that introduced this mapping is: errors about the mapping as a whole point here.</summary>
    public Mark Owner => _node.Owner;

    /// <summary>The value of an optional key; null when absent or YAML null, so the default applies.</summary>
    public ConfigNode? Optional(string key)
    {
        EnsureAllowed(key);
        return _entries.TryGetValue(key, out var value) && !value.IsNull ? value : null;
    }

    /// <summary>The value of a required key; reports it when absent or null. A mapping already reported as the wrong type reports nothing more.</summary>
    public ConfigNode? Required(string key)
    {
        EnsureAllowed(key);
        if (_entries.TryGetValue(key, out var value))
        {
            if (!value.IsNull)
            {
                return value;
            }

            _reader.Report(value.Path, value.Owner, "a value is required");
            return null;
        }

        if (_isValid)
        {
            _reader.Report(PathOf(key), _node.Owner, $"required key '{key}' is missing");
        }

        return null;
    }

    public string PathOf(string key) => Path.Length == 0 ? key : $"{Path}.{key}";

    private void EnsureAllowed(string key)
    {
        if (!_allowedKeys.Contains(key, StringComparer.Ordinal))
        {
            throw new InvalidOperationException($"Key '{key}' is read but not declared among the allowed keys of '{Path}'.");
        }
    }
}
