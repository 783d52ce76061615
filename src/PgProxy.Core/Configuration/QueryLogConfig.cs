namespace PgProxy.Core.Configuration;

/// <summary>How query-log lines are written.</summary>
public enum QueryLogFormat
{
    /// <summary>One JSON object per line.</summary>
    Json,

    /// <summary>One line of <c>key=value</c> fields.</summary>
    Text,
}

/// <summary>The <c>query-log</c> section: one line per executed statement. Absent: no query log.</summary>
public sealed record QueryLogConfig
{
    /// <summary><c>file</c>: the log file, absolute. Required.</summary>
    public required string File { get; init; }

    /// <summary><c>format</c>: json (default) or text.</summary>
    public QueryLogFormat Format { get; init; } = QueryLogFormat.Json;

    /// <summary><c>min-duration</c>: only statements at least this slow. Default 0 (every statement).</summary>
    public TimeSpan MinDuration { get; init; } = TimeSpan.Zero;

    /// <summary><c>parameters</c>: write the statement's own text and its bind parameter values. Default false.</summary>
    public bool Parameters { get; init; }

    private static readonly string[] Keys = ["file", "format", "min-duration", "parameters"];

    private static readonly Dictionary<string, QueryLogFormat> Formats = new(StringComparer.OrdinalIgnoreCase)
    {
        ["json"] = QueryLogFormat.Json,
        ["text"] = QueryLogFormat.Text,
    };

    internal static QueryLogConfig? Read(ConfigNodeReader reader, ConfigNode? node, string baseDirectory)
    {
        if (node is not { } section || section.IsNull)
        {
            return null;
        }

        ConfigMapping mapping = reader.Mapping(section, Keys);
        string? file = mapping.Required("file") is { } fileNode ? reader.Text(fileNode) : null;
        if (file is null)
        {
            return null;
        }

        return new QueryLogConfig
        {
            File = Path.GetFullPath(file, baseDirectory),
            Format = (mapping.Optional("format") is { } format ? reader.Choice(format, Formats) : null) ?? QueryLogFormat.Json,
            MinDuration = (mapping.Optional("min-duration") is { } min ? reader.Duration(min, mustBePositive: false) : null) ?? TimeSpan.Zero,
            Parameters = (mapping.Optional("parameters") is { } parameters ? reader.Boolean(parameters) : null) ?? false,
        };
    }
}
