using YamlDotNet.RepresentationModel;

namespace PgProxy.Core.Configuration;

/// <summary>Reads an instance's <c>pool</c> section; every error names its key and line.</summary>
internal static class PoolConfigReader
{
    private static readonly string[] PoolKeys =
        ["mode", "size", "min-idle", "queue-timeout", "server-idle-timeout", "server-lifetime", "reset-query", "prepared-statements"];

    private static readonly Dictionary<string, PoolMode> Modes = new(StringComparer.Ordinal)
    {
        ["none"] = PoolMode.None,
        ["session"] = PoolMode.Session,
        ["transaction"] = PoolMode.Transaction,
    };

    /// <param name="reader">Where errors are reported.</param>
    /// <param name="node">The <c>pool</c> value; null when absent.</param>
    /// <param name="hasAuth">Whether the instance has an <c>auth</c> section: pooling needs one, the proxy authenticates clients itself.</param>
    public static PoolConfig Read(ConfigNodeReader reader, ConfigNode? node, bool hasAuth)
    {
        if (node is not { } section || section.IsNull)
        {
            return PoolConfig.None;
        }

        PoolConfig defaults = PoolConfig.None;
        ConfigMapping mapping = reader.Mapping(section, PoolKeys);
        PoolMode mode = mapping.Optional("mode") is { } modeNode ? reader.Choice(modeNode, Modes) ?? defaults.Mode : defaults.Mode;
        int size = mapping.Optional("size") is { } sizeNode ? reader.Integer(sizeNode, 1, 100_000) ?? defaults.Size : defaults.Size;
        int minIdle = defaults.MinIdle;
        if (mapping.Optional("min-idle") is { } minIdleNode && reader.Integer(minIdleNode, 0, 100_000) is { } readMinIdle)
        {
            if (readMinIdle > size)
            {
                reader.Report(minIdleNode, $"min-idle ({readMinIdle}) cannot exceed size ({size})");
            }

            minIdle = readMinIdle;
        }

        string resetQuery = defaults.ResetQuery;
        if (mapping.Optional("reset-query") is { } resetNode)
        {
            // An empty reset query ('') is allowed: it means none, for applications that reset their own state.
            resetQuery = resetNode.Node is YamlScalarNode { Value: { } text } && text.Trim().Length == 0
                ? ""
                : reader.Text(resetNode) ?? defaults.ResetQuery;
        }

        var pool = new PoolConfig
        {
            Mode = mode,
            Size = size,
            MinIdle = minIdle,
            QueueTimeout = Duration(reader, mapping, "queue-timeout") ?? defaults.QueueTimeout,
            ServerIdleTimeout = Duration(reader, mapping, "server-idle-timeout") ?? defaults.ServerIdleTimeout,
            ServerLifetime = Duration(reader, mapping, "server-lifetime") ?? defaults.ServerLifetime,
            ResetQuery = resetQuery,
            PreparedStatements = mapping.Optional("prepared-statements") is { } preparedNode
                ? reader.Integer(preparedNode, 0, 1_000_000) ?? defaults.PreparedStatements
                : defaults.PreparedStatements,
        };

        if (pool.Pools && !hasAuth)
        {
            reader.Report(mapping.PathOf("mode"), mapping.Optional("mode")?.Owner ?? section.Owner,
                $"pool.mode {mode.ToString().ToLowerInvariant()} needs an auth section (auth-file, or auth-user with auth-query): with pooling PgProxy authenticates clients itself");
        }


        return pool;
    }

    private static TimeSpan? Duration(ConfigNodeReader reader, ConfigMapping mapping, string key) =>
        mapping.Optional(key) is { } node ? reader.Duration(node, mustBePositive: true) : null;
}
