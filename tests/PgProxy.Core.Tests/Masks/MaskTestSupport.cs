using PgProxy.Core.Configuration;
using PgProxy.Core.Masks;

namespace PgProxy.Core.Tests.Masks;

/// <summary>Mask sets built from YAML the way an instance gets them: through the configuration loader, then <see cref="MaskSet.Build"/>.</summary>
internal static class MaskSets
{
    /// <summary>A configuration whose one instance has <paramref name="masks"/> (a YAML list, written at six spaces) and <paramref name="settings"/> lines.</summary>
    public static string Config(string masks, string settings = "") =>
        "settings:\n" + settings + "instances:\n"
        + "  - listen: {name: proxy, host: 127.0.0.1, port: 6432}\n"
        + "    redirect: {name: db, host: 127.0.0.1, port: 5432}\n"
        + "    masks:\n" + masks;

    public static ProxyConfig Load(string yaml) => ConfigLoader.Parse(yaml, Path.GetTempPath(), "config.yml");

    public static MaskSet Build(string masks, string settings = "")
    {
        ProxyConfig config = Load(Config(masks, settings));
        return MaskSet.Build(config.Instances[0].Masks, config.Settings);
    }

    public static IReadOnlyList<ConfigError> Errors(string masks) =>
        Assert.Throws<ConfigException>(() => Load(Config(masks))).Errors;
}
