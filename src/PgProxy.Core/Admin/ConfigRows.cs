using System.Globalization;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;

namespace PgProxy.Core.Admin;

/// <summary>
/// SHOW CONFIG: the running configuration as one row per key, named by its path in the file
/// (<c>instances[0].listen.port</c>) and written as the file would write it, every default filled in. Secrets are masked.
/// </summary>
internal static class ConfigRows
{
    /// <summary>What a set secret shows instead of its value.</summary>
    public const string Masked = "********";

    public static IReadOnlyList<IReadOnlyList<string?>> Of(ProxyConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var rows = new List<IReadOnlyList<string?>>();
        void Add(string key, string? value) => rows.Add([key, IsSecret(key) && value is not null ? Masked : value]);

        for (int i = 0; i < config.Plugins.Count; i++)
        {
            PluginReference plugin = config.Plugins[i];
            Add($"plugins[{i}].name", plugin.Name);
            foreach ((string name, string value) in plugin.Settings.OrderBy(setting => setting.Key, StringComparer.Ordinal))
            {
                Add($"plugins[{i}].settings.{name}", value);
            }
        }

        ProxySettings settings = config.Settings;
        Add("settings.log-level", LogLevelName(settings.LogLevel));
        Add("settings.general-log", settings.GeneralLog);
        Add("settings.intercept-log", settings.InterceptLog);
        Add("settings.plugin-dir", settings.PluginDirectory);
        Add("settings.log-rotation", settings.LogRotation == LogRotation.Daily ? "daily" : "size");
        Add("settings.log-max-size", ConfigValueParsers.FormatSize(settings.LogMaxSize));
        Add("settings.log-retained-files", Number(settings.LogRetainedFiles));
        Add("settings.shutdown-timeout", Duration(settings.ShutdownTimeout));
        Add("settings.plugin-timeout", Duration(settings.PluginTimeout));
        Add("settings.plugin-failure", PolicyName(settings.PluginFailure));
        Add("settings.rule-timeout", Duration(settings.RuleTimeout));
        Add("settings.rules-mode", ModeName(settings.RulesMode));
        Add("settings.watch-config", Boolean(settings.WatchConfig));

        for (int i = 0; i < config.Instances.Count; i++)
        {
            InstanceConfig instance = config.Instances[i];
            string at = $"instances[{i}]";
            AddEndpoint($"{at}.listen", instance.Listen);
            Add($"{at}.listen.tls.mode", ModeName(instance.ListenTls.Mode));
            Add($"{at}.listen.tls.cert-file", instance.ListenTls.CertFile);
            Add($"{at}.listen.tls.key-file", instance.ListenTls.KeyFile);
            Add($"{at}.listen.tls.key-password", instance.ListenTls.KeyPassword);
            Add($"{at}.listen.tls.min-version", MinVersionName(instance.ListenTls.MinVersion));
            AddEndpoint($"{at}.redirect", instance.Redirect);
            Add($"{at}.redirect.tls.mode", ModeName(instance.UpstreamTls.Mode));
            Add($"{at}.redirect.tls.ca-file", instance.UpstreamTls.CaFile);
            Add($"{at}.redirect.tls.cert-file", instance.UpstreamTls.CertFile);
            Add($"{at}.redirect.tls.key-file", instance.UpstreamTls.KeyFile);
            if (instance.Auth is { } auth)
            {
                Add($"{at}.auth.auth-file", auth.AuthFile);
                Add($"{at}.auth.auth-query", auth.AuthFile is null ? auth.AuthQuery : null);
                Add($"{at}.auth.auth-user", auth.AuthUser);
                Add($"{at}.auth.auth-password", auth.AuthPassword);
            }

            for (int j = 0; j < instance.Rules.Count; j++)
            {
                // A rule by its name, mode and actions; its match conditions are read from the file.
                RuleConfig rule = instance.Rules[j];
                Add($"{at}.rules[{j}].name", rule.Name);
                Add($"{at}.rules[{j}].mode", ModeName(rule.Mode));
                Add($"{at}.rules[{j}].refuse", rule.Refuse is { } refusal ? $"{refusal.SqlState} {refusal.Message}" : null);
                Add($"{at}.rules[{j}].rewrite", rule.Rewrite);
                Add($"{at}.rules[{j}].tag", rule.Tag);
                Add($"{at}.rules[{j}].log", Boolean(rule.Log));
                Add($"{at}.rules[{j}].continue", Boolean(rule.Continue));
            }

            AddInterceptors($"{at}.intercept.commands.queries", instance.Intercept.Queries);
            AddInterceptors($"{at}.intercept.commands.connects", instance.Intercept.Connects);
            AddInterceptors($"{at}.intercept.responses", instance.Intercept.Responses);
            Add($"{at}.limits.max-message-size", ConfigValueParsers.FormatSize(instance.Limits.MaxMessageSize));
            Add($"{at}.limits.connect-timeout", Duration(instance.Limits.ConnectTimeout));
            Add($"{at}.limits.startup-timeout", Duration(instance.Limits.StartupTimeout));
            Add($"{at}.limits.max-connections", Number(instance.Limits.MaxConnections));
        }

        if (config.Metrics is { } metrics)
        {
            Add("metrics.listen.host", metrics.Host);
            Add("metrics.listen.port", Number(metrics.Port));
        }

        Add("stats.queries", Boolean(config.Stats.Queries));
        Add("stats.max-queries", Number(config.Stats.MaxQueries));
        if (config.QueryLog is { } queryLog)
        {
            Add("query-log.file", queryLog.File);
            Add("query-log.format", queryLog.Format.ToString().ToLowerInvariant());
            Add("query-log.min-duration", Duration(queryLog.MinDuration));
            Add("query-log.parameters", Boolean(queryLog.Parameters));
        }

        if (config.Admin is { } admin)
        {
            Add("admin.listen.host", admin.Listen?.Host);
            Add("admin.listen.port", admin.Listen is { } listen ? Number(listen.Port) : null);
            Add("admin.users", string.Join(", ", admin.Users));
            Add("admin.auth-file", admin.AuthFile);
            Add("admin.tls.mode", ModeName(admin.Tls.Mode));
            Add("admin.tls.cert-file", admin.Tls.CertFile);
            Add("admin.tls.key-file", admin.Tls.KeyFile);
            Add("admin.tls.key-password", admin.Tls.KeyPassword);
            Add("admin.tls.min-version", MinVersionName(admin.Tls.MinVersion));
        }

        return rows;

        void AddEndpoint(string at, EndpointConfig endpoint)
        {
            Add($"{at}.name", endpoint.Name);
            Add($"{at}.host", endpoint.Host);
            Add($"{at}.port", Number(endpoint.Port));
        }

        void AddInterceptors(string at, IReadOnlyList<InterceptorReference> entries)
        {
            for (int j = 0; j < entries.Count; j++)
            {
                InterceptorReference entry = entries[j];
                Add($"{at}[{j}].plugin", entry.Plugin);
                Add($"{at}[{j}].function", entry.Function);
                Add($"{at}[{j}].on-error", PolicyName(entry.OnError));
                Add($"{at}[{j}].timeout", entry.Timeout is { } timeout ? Duration(timeout) : null);
            }
        }
    }

    /// <summary>
    /// Whether the key's value is a secret: its last name mentions a password, a secret, a token or a key. A name ending
    /// in <c>-file</c> is a path (where a key is kept, not the key), shown so TLS set-ups can be checked. Plugin settings
    /// are judged by the same names, so a plugin's <c>api-key</c> is masked too.
    /// </summary>
    public static bool IsSecret(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        string name = key[(key.LastIndexOf('.') + 1)..].ToLowerInvariant();
        int index = name.IndexOf('[', StringComparison.Ordinal);
        name = index < 0 ? name : name[..index];
        if (name.EndsWith("-file", StringComparison.Ordinal) || name.EndsWith("_file", StringComparison.Ordinal))
        {
            return false;
        }

        return name.Contains("password", StringComparison.Ordinal) || name.Contains("secret", StringComparison.Ordinal)
            || name.Contains("token", StringComparison.Ordinal) || name.Contains("key", StringComparison.Ordinal);
    }

    private static string Number(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Boolean(bool value) => value ? "true" : "false";

    /// <summary>A duration as the file writes it; zero as <c>0s</c> (the parsers' format would say <c>0h</c>).</summary>
    private static string Duration(TimeSpan value) => value == TimeSpan.Zero ? "0s" : ConfigValueParsers.FormatDuration(value);

    private static string ModeName(RuleMode mode) => mode == RuleMode.LogOnly ? "log-only" : "enforce";

    private static string LogLevelName(LogLevel level) => level switch
    {
        LogLevel.Trace => "trace",
        LogLevel.Debug => "debug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warning",
        LogLevel.Error => "error",
        LogLevel.Critical => "critical",
        _ => "none",
    };

    private static string? PolicyName(InterceptorFailurePolicy? policy) => policy switch
    {
        InterceptorFailurePolicy.PassThrough => "pass",
        InterceptorFailurePolicy.Refuse => "refuse",
        _ => null,
    };

    /// <summary>The <c>listen.tls.min-version</c> values.</summary>
    public static string MinVersionName(TlsMinVersion version) => version == TlsMinVersion.Tls13 ? "1.3" : "1.2";

    /// <summary>The <c>listen.tls.mode</c> names.</summary>
    public static string ModeName(ListenTlsMode mode) => mode.ToString().ToLowerInvariant();

    /// <summary>libpq's sslmode names: <c>verify-ca</c>, <c>verify-full</c>.</summary>
    public static string ModeName(UpstreamTlsMode mode) => mode switch
    {
        UpstreamTlsMode.VerifyCa => "verify-ca",
        UpstreamTlsMode.VerifyFull => "verify-full",
        _ => mode.ToString().ToLowerInvariant(),
    };
}
