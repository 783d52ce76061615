namespace PgProxy.Core.Configuration;

/// <summary>The <c>stats</c> section: per-query statistics.</summary>
public sealed record StatsConfig
{
    /// <summary><c>queries</c>: keep per-fingerprint statistics. Default true.</summary>
    public bool Queries { get; init; } = true;

    /// <summary><c>max-queries</c>: entries kept; the least recently seen are evicted first. Default 5000.</summary>
    public int MaxQueries { get; init; } = 5000;

    private static readonly string[] Keys = ["queries", "max-queries"];

    internal static StatsConfig Read(ConfigNodeReader reader, ConfigNode? node)
    {
        var defaults = new StatsConfig();
        if (node is not { } section || section.IsNull)
        {
            return defaults;
        }

        ConfigMapping mapping = reader.Mapping(section, Keys);
        return new StatsConfig
        {
            Queries = (mapping.Optional("queries") is { } queries ? reader.Boolean(queries) : null) ?? defaults.Queries,
            MaxQueries = (mapping.Optional("max-queries") is { } max ? reader.Integer(max, 1, 10_000_000) : null) ?? defaults.MaxQueries,
        };
    }
}
