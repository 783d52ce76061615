using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PgProxy.Core.Configuration;

/// <summary>
/// Reads and validates a PgProxy configuration file (YAML). Validation is strict, since a typo silently
/// ignored would run a proxy other than the one the user described, and it reports every error at once.
/// </summary>
public static class ConfigLoader
{
    /// <summary>Largest <c>max-message-size</c>: a protocol message length is an Int32.</summary>
    public const long MaxMessageSizeLimit = int.MaxValue;

    /// <summary>Smallest <c>max-message-size</c>: below this ordinary start-up and query messages would be refused.</summary>
    public const long MinMessageSize = ConfigValueParsers.Kilobyte;

    /// <summary>Smallest <c>log-max-size</c>: smaller would roll the log every few lines.</summary>
    public const long MinLogFileSize = ConfigValueParsers.Kilobyte;

    /// <summary>Longest plugin timeout: a call that runs for a day is a hang, and the timer takes no more than about 49 days.</summary>
    public static readonly TimeSpan MaxPluginTimeout = TimeSpan.FromDays(1);

    private static readonly string[] RootKeys = ["plugins", "settings", "instances", "metrics", "stats", "query-log", "admin"];
    private static readonly string[] PluginEntryKeys = ["name", "settings"];

    private static readonly string[] SettingsKeys =
    [
        "log-level", "general-log", "intercept-log", "plugin-dir",
        "log-rotation", "log-max-size", "log-retained-files", "shutdown-timeout",
        "plugin-timeout", "plugin-failure", "rule-timeout", "rules-mode", "watch-config",
    ];

    private static readonly string[] InstanceKeys = ["listen", "redirect", "intercept", "limits", "auth", "rules", "masks", "pool"];
    private static readonly string[] EndpointKeys = ["name", "host", "port", "tls", "keepalive"];
    private static readonly string[] KeepaliveKeys = ["idle", "interval", "count"];
    private static readonly string[] ListenTlsKeys = ["mode", "cert-file", "key-file", "key-password", "min-version"];
    private static readonly string[] UpstreamTlsKeys = ["mode", "ca-file", "cert-file", "key-file"];
    private static readonly string[] AuthKeys = ["auth-file", "auth-query", "auth-user", "auth-password"];
    private static readonly string[] InterceptKeys = ["commands", "responses"];
    private static readonly string[] CommandKeys = ["queries", "connects"];
    private static readonly string[] InterceptorKeys = ["plugin", "function", "on-error", "timeout"];
    private static readonly string[] LimitKeys =
    [
        "max-message-size", "connect-timeout", "startup-timeout", "max-connections",
        "max-intercepted-size", "client-idle-timeout", "server-login-timeout",
    ];

    /// <summary>TCP_KEEPIDLE and TCP_KEEPINTVL take whole seconds up to 32767 on Linux; TCP_KEEPCNT up to 127.</summary>
    private static readonly TimeSpan MaxKeepaliveTime = TimeSpan.FromSeconds(32767);

    /// <summary>Reads the file at <paramref name="path"/>; relative paths inside it resolve against its directory.</summary>
    /// <exception cref="ConfigException">The file cannot be read or is not a valid configuration; errors name <paramref name="path"/> as given.</exception>
    public static ProxyConfig LoadFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);

        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            var reason = exception switch
            {
                FileNotFoundException or DirectoryNotFoundException => "the configuration file does not exist",
                UnauthorizedAccessException => "the configuration file cannot be read (permission denied, or it is a directory)",
                _ => $"the configuration file cannot be read: {exception.Message}",
            };
            throw new ConfigException(path, [new ConfigError("", 0, 0, reason)], exception);
        }

        var fullPath = Path.GetFullPath(path);
        var baseDirectory = Path.GetDirectoryName(fullPath) ?? Path.GetPathRoot(fullPath) ?? fullPath;
        return Parse(text, baseDirectory, path);
    }

    /// <summary>Parses configuration text.</summary>
    /// <param name="yamlText">The YAML.</param>
    /// <param name="baseDirectory">Directory relative paths resolve against (made absolute against the current directory if it is not).</param>
    /// <param name="fileName">Name shown at the start of each error line.</param>
    /// <exception cref="ConfigException">The text is not valid YAML or not a valid configuration.</exception>
    public static ProxyConfig Parse(string yamlText, string baseDirectory, string fileName)
    {
        ArgumentNullException.ThrowIfNull(yamlText);
        ArgumentException.ThrowIfNullOrEmpty(baseDirectory);
        ArgumentNullException.ThrowIfNull(fileName);

        var root = LoadSingleDocument(yamlText, fileName);
        var reader = new ConfigNodeReader();
        var config = ReadConfig(reader, root, Path.GetFullPath(baseDirectory));
        if (reader.HasErrors)
        {
            throw new ConfigException(fileName, reader.Errors);
        }

        return config;
    }

    private static ConfigNode LoadSingleDocument(string yamlText, string fileName)
    {
        var stream = new YamlStream();
        var parser = new Parser(new StringReader(yamlText));
        try
        {
            stream.Load(parser);
        }
        catch (YamlException exception)
        {
            var error = new ConfigError("", (int)exception.Start.Line, (int)exception.Start.Column, $"invalid YAML: {exception.Message}");
            throw new ConfigException(fileName, [error], exception);
        }
        catch (Exception exception) when (exception is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's scanner fails this way on some malformed flow collections (an unclosed '['), without a
            // position; the last event it parsed is the closest place to point the user at. ArgumentException ("the
            // current event is of an unsupported type") comes from a '}' where a mapping's ':' should be, inside a
            // block mapping: found by the fuzz replay, it reached the user as an unhandled exception.
            var position = parser.Current?.End ?? Mark.Empty;
            var error = new ConfigError("", (int)position.Line, (int)position.Column, "invalid YAML after this point (an unclosed '[', '{' or quote?)");
            throw new ConfigException(fileName, [error], exception);
        }

        if (stream.Documents.Count == 0)
        {
            throw new ConfigException(fileName, [new ConfigError("", 1, 1, "the configuration is empty; at least 'instances' is required")]);
        }

        if (stream.Documents.Count > 1)
        {
            var second = stream.Documents[1].RootNode;
            throw new ConfigException(fileName, [new ConfigError("", ConfigNodeReader.LineOf(second), (int)second.Start.Column, "expected one YAML document; found a second one here")]);
        }

        var rootNode = stream.Documents[0].RootNode;
        return new ConfigNode(rootNode, "", rootNode.Start);
    }

    private static ProxyConfig ReadConfig(ConfigNodeReader reader, ConfigNode root, string baseDirectory)
    {
        if (root.IsNull)
        {
            reader.Report(root, "the configuration is empty; at least 'instances' is required");
            return new ProxyConfig([], new ProxySettings(), [], baseDirectory);
        }

        var mapping = reader.Mapping(root, RootKeys);
        var plugins = ReadPlugins(reader, mapping.Optional("plugins"));
        var settings = ReadSettings(reader, mapping.Optional("settings"), baseDirectory);
        var instances = ReadInstances(reader, mapping.Required("instances"), plugins, baseDirectory, settings.RuleTimeout);
        return new ProxyConfig(plugins, settings, instances, baseDirectory)
        {
            Metrics = MetricsConfigReader.Read(reader, mapping.Optional("metrics")),
            Stats = StatsConfig.Read(reader, mapping.Optional("stats")),
            QueryLog = QueryLogConfig.Read(reader, mapping.Optional("query-log"), baseDirectory),
            Admin = AdminConfigReader.Read(reader, mapping.Optional("admin"), instances, baseDirectory),
        };
    }

    private static List<PluginReference> ReadPlugins(ConfigNodeReader reader, ConfigNode? node)
    {
        var plugins = new List<PluginReference>();
        if (node is not { } list)
        {
            return plugins;
        }

        foreach (var item in reader.Sequence(list))
        {
            var settings = new Dictionary<string, string>(StringComparer.Ordinal);
            ConfigNode nameNode = item;
            if (item.Node is YamlMappingNode)
            {
                // The long form: {name: NAME, settings: {key: value, ...}}, for plugins that take settings.
                var entry = reader.Mapping(item, PluginEntryKeys);
                if (entry.Required("name") is not { } named)
                {
                    continue;
                }

                nameNode = named;
                if (entry.Optional("settings") is { } settingsNode)
                {
                    ReadPluginSettings(reader, settingsNode, settings);
                }
            }

            if (reader.Text(nameNode) is not { } name)
            {
                continue;
            }

            var line = ConfigNodeReader.LineOf(item.Node);
            var earlier = plugins.Find(plugin => string.Equals(plugin.Name, name, StringComparison.Ordinal));
            if (earlier is not null)
            {
                reader.Report(item, $"plugin '{name}' is listed twice (first on line {earlier.Line})");
                continue;
            }

            plugins.Add(new PluginReference(name, line, settings));
        }

        return plugins;
    }

    /// <summary>A plugin's settings: a mapping of names to scalar values, which the plugin itself validates when it loads.</summary>
    private static void ReadPluginSettings(ConfigNodeReader reader, ConfigNode node, Dictionary<string, string> settings)
    {
        if (node.Node is not YamlMappingNode mapping)
        {
            reader.Report(node, $"expected a mapping of setting names to values, found {ConfigNodeReader.Describe(node.Node)}");
            return;
        }

        foreach ((YamlNode keyNode, YamlNode valueNode) in mapping.Children)
        {
            string key = (keyNode as YamlScalarNode)?.Value ?? "";
            var value = new ConfigNode(valueNode, $"{node.Path}.{key}", keyNode.Start);
            if (valueNode is not YamlScalarNode { Value: { } text } || value.IsNull)
            {
                reader.Report(value, $"expected a value (text or number), found {ConfigNodeReader.Describe(valueNode)}");
                continue;
            }

            settings[key] = text;
        }
    }

    private static ProxySettings ReadSettings(ConfigNodeReader reader, ConfigNode? node, string baseDirectory)
    {
        var defaults = new ProxySettings();
        var defaultPluginDirectory = Path.GetFullPath(defaults.PluginDirectory, baseDirectory);
        if (node is not { } section)
        {
            return defaults with { PluginDirectory = defaultPluginDirectory };
        }

        var mapping = reader.Mapping(section, SettingsKeys);
        return new ProxySettings
        {
            LogLevel = Read(mapping.Optional("log-level"), value => reader.Choice(value, ConfigValueParsers.LogLevels)) ?? defaults.LogLevel,
            GeneralLog = ReadPath(reader, mapping.Optional("general-log"), baseDirectory),
            InterceptLog = ReadPath(reader, mapping.Optional("intercept-log"), baseDirectory),
            PluginDirectory = ReadPath(reader, mapping.Optional("plugin-dir"), baseDirectory) ?? defaultPluginDirectory,
            LogRotation = Read(mapping.Optional("log-rotation"), value => reader.Choice(value, ConfigValueParsers.LogRotations)) ?? defaults.LogRotation,
            LogMaxSize = Read(mapping.Optional("log-max-size"), value => reader.Size(value, MinLogFileSize, long.MaxValue)) ?? defaults.LogMaxSize,
            LogRetainedFiles = Read(mapping.Optional("log-retained-files"), value => reader.Integer(value, 1, int.MaxValue)) ?? defaults.LogRetainedFiles,
            ShutdownTimeout = Read(mapping.Optional("shutdown-timeout"), value => reader.Duration(value, mustBePositive: false)) ?? defaults.ShutdownTimeout,
            PluginTimeout = ReadPluginTimeout(reader, mapping.Optional("plugin-timeout")) ?? defaults.PluginTimeout,
            PluginFailure = ReadFailurePolicy(reader, mapping.Optional("plugin-failure")),
            RuleTimeout = ReadPluginTimeout(reader, mapping.Optional("rule-timeout")) ?? defaults.RuleTimeout,
            RulesMode = Read(mapping.Optional("rules-mode"), value => reader.Choice(value, RulesConfigReader.RuleModes)) ?? defaults.RulesMode,
            WatchConfig = Read(mapping.Optional("watch-config"), reader.Boolean) ?? defaults.WatchConfig,
        };
    }

    internal static string? ReadPath(ConfigNodeReader reader, ConfigNode? node, string baseDirectory)
    {
        if (node is not { } value || reader.Text(value) is not { } path)
        {
            return null;
        }

        try
        {
            return Path.GetFullPath(path, baseDirectory);
        }
        catch (ArgumentException)
        {
            reader.Report(value, $"'{path}' is not a valid path");
            return null;
        }
    }

    private static List<InstanceConfig> ReadInstances(ConfigNodeReader reader, ConfigNode? node, List<PluginReference> plugins, string baseDirectory, TimeSpan ruleTimeout)
    {
        var instances = new List<InstanceConfig>();
        if (node is not { } list)
        {
            return instances;
        }

        var items = reader.Sequence(list);
        if (items.Count == 0 && list.Node is YamlSequenceNode)
        {
            reader.Report(list, "at least one instance is required");
        }

        // Where each listen name and address was first claimed, to name it when a later instance clashes.
        var namesSeen = new Dictionary<string, ConfigNode>(StringComparer.Ordinal);
        var addressesSeen = new Dictionary<string, ConfigNode>(StringComparer.OrdinalIgnoreCase);

        foreach (var item in items)
        {
            var mapping = reader.Mapping(item, InstanceKeys);
            var listen = ReadEndpoint(reader, mapping.Required("listen"), minimumPort: 0);
            var redirect = ReadEndpoint(reader, mapping.Required("redirect"), minimumPort: 1);
            var intercept = ReadIntercept(reader, mapping.Optional("intercept"), plugins);
            var limits = ReadLimits(reader, mapping.Optional("limits"));
            var listenTls = ReadListenTls(reader, listen.Tls, baseDirectory);
            var upstreamTls = ReadUpstreamTls(reader, redirect.Tls, baseDirectory);
            var auth = ReadAuth(reader, mapping.Optional("auth"), baseDirectory);
            var rules = RulesConfigReader.Read(reader, mapping.Optional("rules"), ruleTimeout);
            var masks = MasksConfigReader.Read(reader, mapping.Optional("masks"), ruleTimeout);
            var pool = PoolConfigReader.Read(reader, mapping.Optional("pool"), hasAuth: auth is not null);

            if (listen is { Endpoint: { } endpoint, Node: { } listenNode })
            {
                if (namesSeen.TryGetValue(endpoint.Name, out var sameName))
                {
                    reader.Report($"{listenNode.Path}.name", listenNode.Owner, $"listen name '{endpoint.Name}' is already used by {sameName.Path} (line {sameName.Owner.Line})");
                }
                else
                {
                    namesSeen.Add(endpoint.Name, listenNode);
                }

                // Port 0 asks the system for a free port each time, so two of them never clash.
                var address = $"{endpoint.Host}:{endpoint.Port}";
                if (endpoint.Port != 0)
                {
                    if (addressesSeen.TryGetValue(address, out var sameAddress))
                    {
                        reader.Report(listenNode.Path, listenNode.Owner, $"{address} is already listened on by {sameAddress.Path} (line {sameAddress.Owner.Line})");
                    }
                    else
                    {
                        addressesSeen.Add(address, listenNode);
                    }
                }
            }

            instances.Add(new InstanceConfig(
                listen.Endpoint ?? new EndpointConfig("", "", 0),
                redirect.Endpoint ?? new EndpointConfig("", "", 0),
                intercept,
                limits)
            {
                ListenTls = listenTls,
                UpstreamTls = upstreamTls,
                Auth = auth,
                Rules = rules,
                Masks = masks,
                Pool = pool,
                ListenKeepalive = listen.Keepalive,
                RedirectKeepalive = redirect.Keepalive,
            });
        }

        return instances;
    }

    private static (EndpointConfig? Endpoint, ConfigNode? Node, ConfigNode? Tls, KeepaliveConfig Keepalive) ReadEndpoint(ConfigNodeReader reader, ConfigNode? node, int minimumPort)
    {
        if (node is not { } section)
        {
            return (null, null, null, KeepaliveConfig.SystemDefault);
        }

        var mapping = reader.Mapping(section, EndpointKeys);
        var name = Read(mapping.Required("name"), reader.Text);
        var host = Read(mapping.Required("host"), reader.Text);
        var port = Read(mapping.Required("port"), value => reader.Integer(value, minimumPort, 65535));
        var tls = mapping.Optional("tls");
        var keepalive = ReadKeepalive(reader, mapping.Optional("keepalive"));
        return name is not null && host is not null && port is not null
            ? (new EndpointConfig(name, host, port.Value), section, tls, keepalive)
            : (null, section, tls, keepalive);
    }

    internal static ListenTlsConfig ReadListenTls(ConfigNodeReader reader, ConfigNode? node, string baseDirectory)
    {
        if (node is not { } section)
        {
            return ListenTlsConfig.Disabled;
        }

        var mapping = reader.Mapping(section, ListenTlsKeys);
        var config = new ListenTlsConfig
        {
            Mode = Read(mapping.Optional("mode"), value => reader.Choice(value, ConfigValueParsers.ListenTlsModes)) ?? ListenTlsMode.Disable,
            CertFile = ReadPath(reader, mapping.Optional("cert-file"), baseDirectory),
            KeyFile = ReadPath(reader, mapping.Optional("key-file"), baseDirectory),
            KeyPassword = Read(mapping.Optional("key-password"), reader.Text),
            MinVersion = Read(mapping.Optional("min-version"), value => reader.Choice(value, ConfigValueParsers.TlsMinVersions)) ?? TlsMinVersion.Tls12,
        };

        // A server certificate is needed as soon as TLS is offered; half a pair is a mistake in any mode.
        if (config.Enabled || config.CertFile is not null || config.KeyFile is not null)
        {
            RequirePair(reader, mapping, config.CertFile, config.KeyFile, config.Enabled ? $"mode {Describe(config.Mode)} needs" : "a TLS certificate needs");
        }

        return config;
    }

    private static UpstreamTlsConfig ReadUpstreamTls(ConfigNodeReader reader, ConfigNode? node, string baseDirectory)
    {
        if (node is not { } section)
        {
            return UpstreamTlsConfig.Default;
        }

        var mapping = reader.Mapping(section, UpstreamTlsKeys);
        var config = new UpstreamTlsConfig
        {
            Mode = Read(mapping.Optional("mode"), value => reader.Choice(value, ConfigValueParsers.UpstreamTlsModes)) ?? UpstreamTlsMode.Prefer,
            CaFile = ReadPath(reader, mapping.Optional("ca-file"), baseDirectory),
            CertFile = ReadPath(reader, mapping.Optional("cert-file"), baseDirectory),
            KeyFile = ReadPath(reader, mapping.Optional("key-file"), baseDirectory),
        };

        if (config.CertFile is not null || config.KeyFile is not null)
        {
            RequirePair(reader, mapping, config.CertFile, config.KeyFile, "a client certificate needs");
        }

        return config;
    }

    private static void RequirePair(ConfigNodeReader reader, ConfigMapping mapping, string? certFile, string? keyFile, string why)
    {
        if (certFile is null)
        {
            reader.Report(mapping.PathOf("cert-file"), mapping.Owner, $"{why} both cert-file and key-file; cert-file is missing");
        }

        if (keyFile is null)
        {
            reader.Report(mapping.PathOf("key-file"), mapping.Owner, $"{why} both cert-file and key-file; key-file is missing");
        }
    }

    private static AuthConfig? ReadAuth(ConfigNodeReader reader, ConfigNode? node, string baseDirectory)
    {
        if (node is not { } section)
        {
            return null;
        }

        var mapping = reader.Mapping(section, AuthKeys);
        var authFile = ReadPath(reader, mapping.Optional("auth-file"), baseDirectory);
        var authQuery = Read(mapping.Optional("auth-query"), reader.Text);
        var authUser = Read(mapping.Optional("auth-user"), reader.Text);
        var authPassword = Read(mapping.Optional("auth-password"), reader.Text);
        bool usesQuery = authQuery is not null || authUser is not null || authPassword is not null;
        if (authFile is not null && usesQuery)
        {
            reader.Report(mapping.Path, mapping.Owner, "set either auth-file, or auth-user (with auth-query and auth-password), not both");
        }
        else if (authFile is null && authUser is null)
        {
            reader.Report(mapping.Path, mapping.Owner, usesQuery
                ? "auth-query needs auth-user, the role that runs it"
                : "set auth-file, or auth-user (with auth-query and auth-password)");
        }

        return new AuthConfig
        {
            AuthFile = authFile,
            AuthQuery = authQuery ?? AuthConfig.DefaultAuthQuery,
            AuthUser = authUser,
            AuthPassword = authPassword,
        };
    }

    private static string Describe(ListenTlsMode mode) => mode.ToString().ToLowerInvariant();

    private static InterceptConfig ReadIntercept(ConfigNodeReader reader, ConfigNode? node, List<PluginReference> plugins)
    {
        if (node is not { } section)
        {
            return InterceptConfig.None;
        }

        var mapping = reader.Mapping(section, InterceptKeys);
        var commands = mapping.Optional("commands") is { } commandsNode
            ? reader.Mapping(commandsNode, CommandKeys)
            : null;

        return new InterceptConfig(
            ReadInterceptors(reader, commands?.Optional("queries"), plugins),
            ReadInterceptors(reader, commands?.Optional("connects"), plugins),
            ReadInterceptors(reader, mapping.Optional("responses"), plugins));
    }

    private static List<InterceptorReference> ReadInterceptors(ConfigNodeReader reader, ConfigNode? node, List<PluginReference> plugins)
    {
        var interceptors = new List<InterceptorReference>();
        if (node is not { } list)
        {
            return interceptors;
        }

        foreach (var item in reader.Sequence(list))
        {
            var mapping = reader.Mapping(item, InterceptorKeys);
            var pluginNode = mapping.Required("plugin");
            var plugin = Read(pluginNode, reader.Text);
            var function = Read(mapping.Required("function"), reader.Text);
            var onError = ReadFailurePolicy(reader, mapping.Optional("on-error"));
            var timeout = ReadPluginTimeout(reader, mapping.Optional("timeout"));

            // Catch a misspelt plugin here, with its line, rather than when the plugins are loaded.
            if (plugin is not null && pluginNode is { } pluginValue
                && !plugins.Exists(candidate => string.Equals(candidate.Name, plugin, StringComparison.Ordinal)))
            {
                reader.Report(pluginValue, $"plugin '{plugin}' is not in the top-level 'plugins' list");
            }

            if (plugin is not null && function is not null)
            {
                interceptors.Add(new InterceptorReference(plugin, function, ConfigNodeReader.LineOf(item.Node)) { OnError = onError, Timeout = timeout });
            }
        }

        return interceptors;
    }

    /// <summary><c>settings.plugin-timeout</c> and an entry's <c>timeout</c>: one parser and one range for both.</summary>
    private static TimeSpan? ReadPluginTimeout(ConfigNodeReader reader, ConfigNode? node) =>
        Read(node, value => reader.Duration(value, mustBePositive: true, MaxPluginTimeout));

    /// <summary><c>settings.plugin-failure</c> and an entry's <c>on-error</c>: <c>pass</c> or <c>refuse</c>.</summary>
    private static Interception.InterceptorFailurePolicy? ReadFailurePolicy(ConfigNodeReader reader, ConfigNode? node) =>
        Read(node, value => reader.Choice(value, ConfigValueParsers.FailurePolicies));

    private static InstanceLimits ReadLimits(ConfigNodeReader reader, ConfigNode? node)
    {
        var defaults = InstanceLimits.Default;
        if (node is not { } section)
        {
            return defaults;
        }

        var mapping = reader.Mapping(section, LimitKeys);
        return new InstanceLimits
        {
            MaxMessageSize = Read(mapping.Optional("max-message-size"), value => reader.Size(value, MinMessageSize, MaxMessageSizeLimit)) ?? defaults.MaxMessageSize,
            ConnectTimeout = Read(mapping.Optional("connect-timeout"), value => reader.Duration(value, mustBePositive: true)) ?? defaults.ConnectTimeout,
            StartupTimeout = Read(mapping.Optional("startup-timeout"), value => reader.Duration(value, mustBePositive: true)) ?? defaults.StartupTimeout,
            MaxConnections = Read(mapping.Optional("max-connections"), value => reader.Integer(value, 0, int.MaxValue)) ?? defaults.MaxConnections,
            MaxInterceptedSize = Read(mapping.Optional("max-intercepted-size"), value => reader.Size(value, MinMessageSize, MaxMessageSizeLimit)) ?? defaults.MaxInterceptedSize,
            ClientIdleTimeout = Read(mapping.Optional("client-idle-timeout"), value => reader.Duration(value, mustBePositive: false)) is { } idle && idle > TimeSpan.Zero ? idle : null,
            ServerLoginTimeout = Read(mapping.Optional("server-login-timeout"), value => reader.Duration(value, mustBePositive: true)) ?? defaults.ServerLoginTimeout,
        };
    }

    /// <summary><c>listen.keepalive</c>, <c>redirect.keepalive</c>: whole seconds (TCP's unit), each key optional.</summary>
    private static KeepaliveConfig ReadKeepalive(ConfigNodeReader reader, ConfigNode? node)
    {
        if (node is not { } section)
        {
            return KeepaliveConfig.SystemDefault;
        }

        var mapping = reader.Mapping(section, KeepaliveKeys);
        return new KeepaliveConfig
        {
            Idle = Read(mapping.Optional("idle"), value => WholeSeconds(reader, value)),
            Interval = Read(mapping.Optional("interval"), value => WholeSeconds(reader, value)),
            Count = Read(mapping.Optional("count"), value => reader.Integer(value, 1, 127)),
        };
    }

    private static TimeSpan? WholeSeconds(ConfigNodeReader reader, ConfigNode node)
    {
        if (reader.Duration(node, mustBePositive: true, MaxKeepaliveTime) is not { } duration)
        {
            return null;
        }

        if (duration.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            reader.Report(node, $"expected whole seconds (TCP keepalive counts in seconds), got {ConfigNodeReader.Describe(node.Node)}");
            return null;
        }

        return duration;
    }

    private static T? Read<T>(ConfigNode? node, Func<ConfigNode, T?> read)
        where T : struct =>
        node is { } value ? read(value) : null;

    private static string? Read(ConfigNode? node, Func<ConfigNode, string?> read) =>
        node is { } value ? read(value) : null;
}
