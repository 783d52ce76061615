namespace PgProxy.Core.Configuration;

/// <summary>
/// The <c>metrics</c> section: where the Prometheus endpoint listens (<c>GET /metrics</c>). Absent: no endpoint, and
/// nothing listens to the engine's instruments.
/// </summary>
public sealed record MetricsConfig
{
    public const string DefaultHost = "127.0.0.1";
    public const int DefaultPort = 9187;

    /// <summary>The path Prometheus scrapes; every other path answers 404.</summary>
    public const string Path = "/metrics";

    /// <summary><c>listen.host</c>: an address or a host name; default 127.0.0.1 (the metrics are not for the network by default).</summary>
    public string Host { get; init; } = DefaultHost;

    /// <summary><c>listen.port</c>: default 9187; 0 takes a free port, which the log names.</summary>
    public int Port { get; init; } = DefaultPort;
}

/// <summary>Reads the <c>metrics</c> section, reporting errors with their key and line like the rest of the loader.</summary>
internal static class MetricsConfigReader
{
    private static readonly string[] Keys = ["listen"];
    private static readonly string[] ListenKeys = ["host", "port"];

    /// <summary>Null when the section is absent or empty (<c>metrics:</c>); every key of it has a default.</summary>
    public static MetricsConfig? Read(ConfigNodeReader reader, ConfigNode? node)
    {
        if (node is not { } section)
        {
            return null;
        }

        var config = new MetricsConfig();
        if (reader.Mapping(section, Keys).Optional("listen") is not { } listenNode)
        {
            return config;
        }

        var listen = reader.Mapping(listenNode, ListenKeys);
        return config with
        {
            Host = listen.Optional("host") is { } host ? reader.Text(host) ?? config.Host : config.Host,
            Port = listen.Optional("port") is { } port ? reader.Integer(port, 0, 65535) ?? config.Port : config.Port,
        };
    }
}
