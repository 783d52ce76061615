using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.TestSupport;

namespace PgProxy.Core.Tests.Configuration;

public sealed class ConfigLoaderTests
{
    // Never created: Parse only resolves paths against it.
    private static readonly string BaseDirectory = Path.Combine(Path.GetTempPath(), "pgproxy-config-tests-base");

    /// <summary>
    /// The original's config.yml, byte for byte as the seed gives it: shipped with the plugin it configures as
    /// plugins/TableauHll/config.yml, which the end-to-end tests and scripts/demo.sh also run.
    /// </summary>
    private static readonly string SeedConfig = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "plugins", "TableauHll", "config.yml"));

    /// <summary>The smallest valid file: one instance, everything else defaulted.</summary>
    private const string MinimalConfig = """
        instances:
          - listen: {name: proxy, host: 127.0.0.1, port: 6432}
            redirect: {name: db, host: db.example, port: 5432}
        """;

    private static ProxyConfig Parse(string yaml) => ConfigLoader.Parse(yaml, BaseDirectory, "config.yml");

    private static ConfigException ParseFails(string yaml) => Assert.Throws<ConfigException>(() => Parse(yaml));

    private static ConfigError SingleError(string yaml) => Assert.Single(ParseFails(yaml).Errors);

    /// <summary>A valid file whose first instance carries <paramref name="instanceExtra"/> (indented 4) and <paramref name="settings"/> section.</summary>
    private static string WithInstance(string instanceExtra = "", string settings = "") => $"""
        plugins: [p]
        settings:
        {settings}
        instances:
          - listen: {"{"}name: proxy, host: 127.0.0.1, port: 6432{"}"}
            redirect: {"{"}name: db, host: 127.0.0.1, port: 5432{"}"}
        {instanceExtra}
        """;

    [Fact]
    public void Seed_config_is_accepted_with_its_values()
    {
        var config = Parse(SeedConfig);

        var plugin = Assert.Single(config.Plugins);
        Assert.Equal(new PluginReference("tableau_hll", 2), plugin);

        Assert.Equal(LogLevel.Debug, config.Settings.LogLevel);
        Assert.Equal(Path.Combine(BaseDirectory, "logs", "intercept.log"), config.Settings.InterceptLog);
        Assert.Equal(Path.Combine(BaseDirectory, "logs", "general.log"), config.Settings.GeneralLog);
        Assert.Equal(BaseDirectory, config.BaseDirectory);

        var instance = Assert.Single(config.Instances);
        Assert.Equal(new EndpointConfig("proxy", "127.0.0.1", 5111), instance.Listen);
        Assert.Equal(new EndpointConfig("postgresql", "127.0.0.1", 5432), instance.Redirect);
        Assert.Equal(new InterceptorReference("tableau_hll", "rewrite_query", 21), Assert.Single(instance.Intercept.Queries));
        Assert.Empty(instance.Intercept.Connects);
        Assert.Empty(instance.Intercept.Responses);
        Assert.Equal(InstanceLimits.Default, instance.Limits);
    }

    [Fact]
    public void Absent_sections_take_their_defaults()
    {
        var config = Parse(MinimalConfig);

        Assert.Empty(config.Plugins);
        var settings = config.Settings;
        Assert.Equal(LogLevel.Information, settings.LogLevel);
        Assert.Null(settings.GeneralLog);
        Assert.Null(settings.InterceptLog);
        Assert.Equal(Path.Combine(BaseDirectory, "plugins"), settings.PluginDirectory);
        Assert.Equal(LogRotation.Size, settings.LogRotation);
        Assert.Equal(100L * 1024 * 1024, settings.LogMaxSize);
        Assert.Equal(10, settings.LogRetainedFiles);
        Assert.Equal(TimeSpan.FromSeconds(30), settings.ShutdownTimeout);

        var instance = Assert.Single(config.Instances);
        Assert.True(instance.Intercept.IsEmpty);
        Assert.Equal(1L << 30, instance.Limits.MaxMessageSize);
        Assert.Equal(TimeSpan.FromSeconds(10), instance.Limits.ConnectTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), instance.Limits.StartupTimeout);
        Assert.Equal(0, instance.Limits.MaxConnections);
    }

    [Fact]
    public void Null_sections_and_values_take_their_defaults()
    {
        var config = Parse("""
            plugins:
            settings:
              log-level:
              general-log: ~
            instances:
              - listen: {name: a, host: h, port: 1}
                redirect: {name: b, host: h, port: 2}
                intercept:
                limits: null
            """);

        Assert.Empty(config.Plugins);
        Assert.Equal(LogLevel.Information, config.Settings.LogLevel);
        Assert.Null(config.Settings.GeneralLog);
        Assert.True(config.Instances[0].Intercept.IsEmpty);
        Assert.Equal(InstanceLimits.Default, config.Instances[0].Limits);
    }

    [Fact]
    public void Every_setting_and_limit_is_read()
    {
        var config = Parse("""
            plugins: [audit, tableau_hll]
            settings:
              log-level: WARNING
              general-log: /var/log/pgproxy/general.log
              intercept-log: intercept.log
              plugin-dir: ../shared/plugins
              log-rotation: Daily
              log-max-size: 20MB
              log-retained-files: 3
              shutdown-timeout: 500ms
            instances:
              - listen: {name: proxy, host: 0.0.0.0, port: 0}
                redirect: {name: db, host: db.internal, port: 65535}
                intercept:
                  commands:
                    queries: [{plugin: tableau_hll, function: rewrite_query}]
                    connects: [{plugin: audit, function: on_connect}]
                  responses:
                    - plugin: audit
                      function: on_response
                limits:
                  max-message-size: 64kB
                  connect-timeout: 2m
                  startup-timeout: 1.5s
                  max-connections: 200
            """);

        Assert.Equal(["audit", "tableau_hll"], config.Plugins.Select(plugin => plugin.Name));
        var settings = config.Settings;
        Assert.Equal(LogLevel.Warning, settings.LogLevel);
        Assert.Equal("/var/log/pgproxy/general.log", settings.GeneralLog);
        Assert.Equal(Path.Combine(BaseDirectory, "intercept.log"), settings.InterceptLog);
        Assert.Equal(Path.GetFullPath(Path.Combine(BaseDirectory, "..", "shared", "plugins")), settings.PluginDirectory);
        Assert.Equal(LogRotation.Daily, settings.LogRotation);
        Assert.Equal(20L * 1024 * 1024, settings.LogMaxSize);
        Assert.Equal(3, settings.LogRetainedFiles);
        Assert.Equal(TimeSpan.FromMilliseconds(500), settings.ShutdownTimeout);

        var instance = Assert.Single(config.Instances);
        Assert.Equal(0, instance.Listen.Port);
        Assert.Equal(65535, instance.Redirect.Port);
        Assert.Equal(new InterceptorReference("tableau_hll", "rewrite_query", 16), Assert.Single(instance.Intercept.Queries));
        Assert.Equal(new InterceptorReference("audit", "on_connect", 17), Assert.Single(instance.Intercept.Connects));
        Assert.Equal(new InterceptorReference("audit", "on_response", 19), Assert.Single(instance.Intercept.Responses));
        Assert.Equal(64L * 1024, instance.Limits.MaxMessageSize);
        Assert.Equal(TimeSpan.FromMinutes(2), instance.Limits.ConnectTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), instance.Limits.StartupTimeout);
        Assert.Equal(200, instance.Limits.MaxConnections);
    }

    [Theory]
    [InlineData("trace", LogLevel.Trace)]
    [InlineData("Debug", LogLevel.Debug)]
    [InlineData("info", LogLevel.Information)]
    [InlineData("INFORMATION", LogLevel.Information)]
    [InlineData("warn", LogLevel.Warning)]
    [InlineData("warning", LogLevel.Warning)]
    [InlineData("error", LogLevel.Error)]
    [InlineData("critical", LogLevel.Critical)]
    [InlineData("fatal", LogLevel.Critical)]
    [InlineData("none", LogLevel.None)]
    public void Log_level_names_map_to_levels(string name, LogLevel expected)
    {
        var config = Parse(WithInstance(settings: $"  log-level: {name}"));

        Assert.Equal(expected, config.Settings.LogLevel);
    }

    [Theory]
    [InlineData("512", 512L)]
    [InlineData("10B", 10L)]
    [InlineData("1kB", 1024L)]
    [InlineData("1KB", 1024L)]
    [InlineData("100MB", 100L * 1024 * 1024)]
    [InlineData("100 mb", 100L * 1024 * 1024)]
    [InlineData("2GB", 2L * 1024 * 1024 * 1024)]
    [InlineData(" 7 kb ", 7L * 1024)]
    public void Sizes_parse_with_binary_units(string text, long expected)
    {
        Assert.True(ConfigValueParsers.TryParseSize(text, out var bytes));
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData("")]
    [InlineData("MB")]
    [InlineData("-1")]
    [InlineData("1.5MB")]
    [InlineData("10 TB")]
    [InlineData("10 MiB")]
    [InlineData("abc")]
    [InlineData("99999999999999999999")]
    [InlineData("9999999999 GB")]
    public void Malformed_sizes_are_refused(string text)
    {
        Assert.False(ConfigValueParsers.TryParseSize(text, out _));
    }

    [Theory]
    [InlineData("30", 30_000)]
    [InlineData("0", 0)]
    [InlineData("500ms", 500)]
    [InlineData("10s", 10_000)]
    [InlineData("1.5s", 1_500)]
    [InlineData("2m", 120_000)]
    [InlineData("1h", 3_600_000)]
    [InlineData("10 S", 10_000)]
    public void Durations_parse_with_units(string text, long expectedMilliseconds)
    {
        Assert.True(ConfigValueParsers.TryParseDuration(text, out var duration));
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMilliseconds), duration);
    }

    [Theory]
    [InlineData("")]
    [InlineData("s")]
    [InlineData("-5s")]
    [InlineData("10d")]
    [InlineData("1m30s")]
    [InlineData("ten seconds")]
    [InlineData("999999999999999999999h")]
    public void Malformed_durations_are_refused(string text)
    {
        Assert.False(ConfigValueParsers.TryParseDuration(text, out _));
    }

    [Fact]
    public void Error_message_reads_file_line_column_key_path_and_problem()
    {
        var exception = ParseFails("""
            instances:
              - listen:
                  name: proxy
                  host: 127.0.0.1
                  port: abc
                redirect: {name: db, host: 127.0.0.1, port: 5432}
            """);

        var error = Assert.Single(exception.Errors);
        Assert.Equal(new ConfigError("instances[0].listen.port", 5, 13, "expected an integer from 0 to 65535, got 'abc'"), error);
        Assert.Equal("config.yml:5:13: instances[0].listen.port: expected an integer from 0 to 65535, got 'abc'", exception.Message);
        Assert.Equal("config.yml", exception.FileName);
    }

    [Fact]
    public void All_errors_are_collected_in_file_order_one_per_line_of_the_message()
    {
        var exception = ParseFails("""
            settings:
              log-level: loud
              colour: blue
            instances:
              - listen: {name: proxy, host: 127.0.0.1, port: 99999}
                redirect: {name: db, host: 127.0.0.1}
            """);

        Assert.Equal(
            [
                ("settings.log-level", 2),
                ("settings.colour", 3),
                ("instances[0].listen.port", 5),
                ("instances[0].redirect.port", 6),
            ],
            exception.Errors.Select(error => (error.KeyPath, error.Line)));
        var lines = exception.Message.Split('\n');
        Assert.Equal(4, lines.Length);
        Assert.All(lines, line => Assert.StartsWith("config.yml:", line, StringComparison.Ordinal));
    }

    [Fact]
    public void Unknown_top_level_key_is_named_with_its_line()
    {
        var error = SingleError(MinimalConfig + "\nconsole: {port: 9000}\n");

        Assert.Equal("console", error.KeyPath);
        Assert.Equal(4, error.Line);
        Assert.Contains("unknown key 'console'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_key_inside_an_endpoint_lists_the_expected_keys()
    {
        var error = SingleError("""
            instances:
              - listen:
                  name: proxy
                  host: 127.0.0.1
                  port: 6432
                  prot: 1
                redirect: {name: db, host: 127.0.0.1, port: 5432}
            """);

        Assert.Equal("instances[0].listen.prot", error.KeyPath);
        Assert.Equal(6, error.Line);
        Assert.Equal(7, error.Column);
        Assert.Equal("unknown key 'prot'; expected one of name, host, port, tls, keepalive", error.Message);
    }

    [Fact]
    public void Snake_case_key_suggests_the_hyphenated_spelling()
    {
        var error = SingleError(WithInstance(settings: "  log_level: debug"));

        Assert.Equal("settings.log_level", error.KeyPath);
        Assert.Equal(3, error.Line);
        Assert.Contains("did you mean 'log-level'?", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_keys_in_intercept_and_limits_are_errors()
    {
        var exception = ParseFails(WithInstance("""
                intercept:
                  queries: []
                  commands: {queries: [], disconnects: []}
                limits: {max-conections: 5}
            """));

        Assert.Equal(
            ["instances[0].intercept.queries", "instances[0].intercept.commands.disconnects", "instances[0].limits.max-conections"],
            exception.Errors.Select(error => error.KeyPath));
        Assert.Equal([8, 9, 10], exception.Errors.Select(error => error.Line));
    }

    [Theory]
    [InlineData("port: 70000", "expected an integer from 0 to 65535, got '70000'")]
    [InlineData("port: -1", "expected an integer from 0 to 65535, got '-1'")]
    [InlineData("port: 5.5", "expected an integer from 0 to 65535, got '5.5'")]
    [InlineData("port: [1]", "expected an integer from 0 to 65535, got a list")]
    [InlineData("port: '6432'", "expected an integer from 0 to 65535, got '6432' (a quoted value is a string; remove the quotes)")]
    public void Listen_port_must_be_an_integer_in_range(string portLine, string expectedMessage)
    {
        var error = SingleError($"""
            instances:
              - listen:
                  name: proxy
                  host: 127.0.0.1
                  {portLine}
                redirect: {"{"}name: db, host: 127.0.0.1, port: 5432{"}"}
            """);

        Assert.Equal(new ConfigError("instances[0].listen.port", 5, 13, expectedMessage), error);
    }

    [Fact]
    public void Redirect_port_zero_is_refused_though_listen_port_zero_means_any_free_port()
    {
        var error = SingleError("""
            instances:
              - listen: {name: proxy, host: 127.0.0.1, port: 0}
                redirect: {name: db, host: 127.0.0.1, port: 0}
            """);

        Assert.Equal("instances[0].redirect.port", error.KeyPath);
        Assert.Equal(3, error.Line);
        Assert.Equal("expected an integer from 1 to 65535, got '0'", error.Message);
    }

    [Fact]
    public void Missing_required_endpoint_is_reported_at_its_instance()
    {
        var error = SingleError("""
            instances:
              - listen: {name: proxy, host: 127.0.0.1, port: 6432}
              - listen: {name: other, host: 127.0.0.1, port: 6433}
                redirect: {name: db, host: 127.0.0.1, port: 5432}
            """);

        Assert.Equal("instances[0].redirect", error.KeyPath);
        Assert.Equal(2, error.Line);
        Assert.Equal("required key 'redirect' is missing", error.Message);
    }

    [Fact]
    public void Missing_and_empty_endpoint_fields_are_reported_at_the_endpoint()
    {
        var exception = ParseFails("""
            instances:
              - listen:
                  name: ""
                  port: 6432
                redirect:
                  name: db
                  host: 127.0.0.1
                  port:
            """);

        Assert.Equal(
            [
                new ConfigError("instances[0].listen.host", 2, 5, "required key 'host' is missing"),
                new ConfigError("instances[0].listen.name", 3, 13, "expected a non-empty string, got ''"),
                new ConfigError("instances[0].redirect.port", 8, 7, "a value is required"),
            ],
            exception.Errors);
    }

    [Fact]
    public void Endpoint_of_the_wrong_type_is_one_error()
    {
        var error = SingleError("""
            instances:
              - listen: [proxy, 127.0.0.1, 6432]
                redirect: {name: db, host: 127.0.0.1, port: 5432}
            """);

        Assert.Equal("instances[0].listen", error.KeyPath);
        Assert.Equal(2, error.Line);
        Assert.Equal("expected a mapping with keys name, host, port, tls, keepalive, got a list", error.Message);
    }

    [Theory]
    [InlineData("plugins: [p]\n", "instances", 1, "required key 'instances' is missing")]
    [InlineData("instances:\n", "instances", 1, "a value is required")]
    [InlineData("plugins: []\ninstances: []\n", "instances", 2, "at least one instance is required")]
    [InlineData("instances: {name: proxy}\n", "instances", 1, "expected a list, got a mapping")]
    [InlineData("- instances\n", "", 1, "expected a mapping with keys plugins, settings, instances, metrics, stats, query-log, admin, got a list")]
    public void Instances_are_required_as_a_non_empty_list(string yaml, string keyPath, int line, string message)
    {
        var error = SingleError(yaml);

        Assert.Equal((keyPath, line, message), (error.KeyPath, error.Line, error.Message));
    }

    [Fact]
    public void Interceptor_naming_an_unlisted_plugin_is_an_error_at_that_line()
    {
        var error = SingleError(WithInstance("""
                intercept:
                  responses:
                    - plugin: tableau_hl
                      function: rewrite_query
            """));

        Assert.Equal("instances[0].intercept.responses[0].plugin", error.KeyPath);
        Assert.Equal(9, error.Line);
        Assert.Equal("plugin 'tableau_hl' is not in the top-level 'plugins' list", error.Message);
    }

    [Fact]
    public void Interceptor_needs_plugin_and_function()
    {
        var exception = ParseFails(WithInstance("""
                intercept:
                  commands:
                    connects:
                      - plugin: p
                      - function: f
                      - plugin: p
                        function: ""
            """));

        Assert.Equal(
            [
                ("instances[0].intercept.commands.connects[0].function", 10, "required key 'function' is missing"),
                ("instances[0].intercept.commands.connects[1].plugin", 11, "required key 'plugin' is missing"),
                ("instances[0].intercept.commands.connects[2].function", 13, "expected a non-empty string, got ''"),
            ],
            exception.Errors.Select(error => (error.KeyPath, error.Line, error.Message)));
    }

    [Fact]
    public void Interceptor_lists_must_be_lists()
    {
        var error = SingleError(WithInstance("""
                intercept:
                  commands:
                    queries: {plugin: p, function: f}
            """));

        Assert.Equal(("instances[0].intercept.commands.queries", 9), (error.KeyPath, error.Line));
        Assert.Equal("expected a list, got a mapping", error.Message);
    }

    [Fact]
    public void Duplicate_plugin_names_the_first_line()
    {
        var error = SingleError("plugins:\n  - a\n  - b\n  - a\n" + MinimalConfig);

        Assert.Equal(("plugins[2]", 4), (error.KeyPath, error.Line));
        Assert.Equal("plugin 'a' is listed twice (first on line 2)", error.Message);
    }

    [Fact]
    public void Plugin_entries_must_be_non_empty_strings()
    {
        var exception = ParseFails("plugins:\n  - ''\n  - [a]\n" + MinimalConfig);

        Assert.Equal(
            [("plugins[0]", 2, "expected a non-empty string, got ''"), ("plugins[1]", 3, "expected a non-empty string, got a list")],
            exception.Errors.Select(error => (error.KeyPath, error.Line, error.Message)));
    }

    [Fact]
    public void A_plugin_entry_may_name_the_plugin_and_give_it_settings()
    {
        var config = ConfigLoader.Parse(
            "plugins:\n  - a\n  - name: tableau_hll\n    settings:\n      metadata-ttl: 30s\n      cache-size: 500\n" + MinimalConfig, "/etc/pgproxy", "config.yml");

        Assert.Equal(["a", "tableau_hll"], config.Plugins.Select(plugin => plugin.Name));
        Assert.Empty(config.Plugins[0].Settings);
        Assert.Equal(3, config.Plugins[1].Line);
        Assert.Equal(
            new Dictionary<string, string> { ["metadata-ttl"] = "30s", ["cache-size"] = "500" },
            config.Plugins[1].Settings);
    }

    [Fact]
    public void A_plugin_entry_mapping_is_checked_like_any_other()
    {
        var exception = ParseFails(
            "plugins:\n  - nmae: a\n  - name: b\n    settings: [1]\n  - name: c\n    settings:\n      ttl: {x: 1}\n" + MinimalConfig);

        Assert.Equal(
            [
                ("plugins[0].nmae", 2, "unknown key 'nmae'; expected one of name, settings"),
                ("plugins[0].name", 2, "required key 'name' is missing"),
                ("plugins[1].settings", 4, "expected a mapping of setting names to values, found a list"),
                ("plugins[2].settings.ttl", 7, "expected a value (text or number), found a mapping"),
            ],
            exception.Errors.Select(error => (error.KeyPath, error.Line, error.Message)));
    }

    [Fact]
    public void Plugins_must_be_a_list()
    {
        var error = SingleError("plugins: tableau_hll\n" + MinimalConfig);

        Assert.Equal(("plugins", 1, "expected a list, got 'tableau_hll'"), (error.KeyPath, error.Line, error.Message));
    }

    [Fact]
    public void Two_instances_on_one_address_are_an_error_at_the_second()
    {
        var error = SingleError("""
            instances:
              - listen: {name: a, host: 127.0.0.1, port: 6432}
                redirect: {name: db, host: 127.0.0.1, port: 5432}
              - listen: {name: b, host: 127.0.0.1, port: 6432}
                redirect: {name: db, host: 127.0.0.1, port: 5433}
            """);

        Assert.Equal(("instances[1].listen", 4), (error.KeyPath, error.Line));
        Assert.Equal("127.0.0.1:6432 is already listened on by instances[0].listen (line 2)", error.Message);
    }

    [Fact]
    public void Two_instances_with_one_listen_name_are_an_error_at_the_second()
    {
        var error = SingleError("""
            instances:
              - listen: {name: proxy, host: 127.0.0.1, port: 6432}
                redirect: {name: db, host: 127.0.0.1, port: 5432}
              - listen: {name: proxy, host: 127.0.0.1, port: 6433}
                redirect: {name: db, host: 127.0.0.1, port: 5432}
            """);

        Assert.Equal(("instances[1].listen.name", 4), (error.KeyPath, error.Line));
        Assert.Equal("listen name 'proxy' is already used by instances[0].listen (line 2)", error.Message);
    }

    [Fact]
    public void Many_instances_may_listen_on_port_zero()
    {
        var config = Parse("""
            instances:
              - listen: {name: a, host: 127.0.0.1, port: 0}
                redirect: {name: db, host: 127.0.0.1, port: 5432}
              - listen: {name: b, host: 127.0.0.1, port: 0}
                redirect: {name: db, host: 127.0.0.1, port: 5432}
            """);

        Assert.Equal(["a", "b"], config.Instances.Select(instance => instance.Listen.Name));
    }

    [Theory]
    [InlineData("  log-level: loud", "settings.log-level", "expected one of trace, debug, info, information, warn, warning, error, critical, fatal, none, got 'loud'")]
    [InlineData("  log-rotation: weekly", "settings.log-rotation", "expected one of size, daily, got 'weekly'")]
    [InlineData("  log-max-size: 100", "settings.log-max-size", "expected a size of at least 1 kB (bytes, or with unit B, kB, MB or GB such as 100MB), got '100'")]
    [InlineData("  log-max-size: lots", "settings.log-max-size", "expected a size of at least 1 kB (bytes, or with unit B, kB, MB or GB such as 100MB), got 'lots'")]
    [InlineData("  log-retained-files: 0", "settings.log-retained-files", "expected an integer of at least 1, got '0'")]
    [InlineData("  shutdown-timeout: soon", "settings.shutdown-timeout", "expected a duration (seconds, or with unit ms, s, m or h such as 10s), got 'soon'")]
    [InlineData("  general-log: [a, b]", "settings.general-log", "expected a non-empty string, got a list")]
    [InlineData("  plugin-dir: ''", "settings.plugin-dir", "expected a non-empty string, got ''")]
    public void Invalid_settings_are_errors_at_their_line(string settingLine, string keyPath, string message)
    {
        var error = SingleError(WithInstance(settings: settingLine));

        Assert.Equal(new ConfigError(keyPath, 3, settingLine.IndexOf(':', StringComparison.Ordinal) + 3, message), error);
    }

    [Theory]
    [InlineData("max-message-size: 1023", "instances[0].limits.max-message-size", "expected a size from 1 kB to 2147483647 bytes (bytes, or with unit B, kB, MB or GB such as 100MB), got '1023'")]
    [InlineData("max-message-size: 2GB", "instances[0].limits.max-message-size", "expected a size from 1 kB to 2147483647 bytes (bytes, or with unit B, kB, MB or GB such as 100MB), got '2GB'")]
    [InlineData("connect-timeout: 0", "instances[0].limits.connect-timeout", "expected a duration greater than zero (seconds, or with unit ms, s, m or h such as 10s), got '0'")]
    [InlineData("startup-timeout: 0ms", "instances[0].limits.startup-timeout", "expected a duration greater than zero (seconds, or with unit ms, s, m or h such as 10s), got '0ms'")]
    [InlineData("max-connections: -1", "instances[0].limits.max-connections", "expected an integer of at least 0, got '-1'")]
    public void Invalid_limits_are_errors_at_their_line(string limitLine, string keyPath, string message)
    {
        var error = SingleError(WithInstance($"    limits:\n      {limitLine}"));

        Assert.Equal((keyPath, 8, message), (error.KeyPath, error.Line, error.Message));
    }

    [Fact]
    public void Largest_message_size_fits_the_protocols_int32_length()
    {
        var config = Parse(WithInstance("    limits: {max-message-size: 2147483647}"));

        Assert.Equal(int.MaxValue, config.Instances[0].Limits.MaxMessageSize);
    }

    [Fact]
    public void Yaml_syntax_error_gives_its_line_and_column()
    {
        var exception = ParseFails("instances:\n  - listen: a\n     redirect: b\n");

        var error = Assert.Single(exception.Errors);
        Assert.Equal(("", 3, 14), (error.KeyPath, error.Line, error.Column));
        Assert.StartsWith("invalid YAML: ", error.Message, StringComparison.Ordinal);
        Assert.StartsWith("config.yml:3:14: invalid YAML: ", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unclosed_bracket_is_a_yaml_error_near_its_line()
    {
        var error = SingleError("plugins: [p]\ninstances:\n  - listen: [a\n    redirect: b\n");

        Assert.Equal("", error.KeyPath);
        Assert.InRange(error.Line, 3, 4);
        Assert.StartsWith("invalid YAML", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Duplicate_key_is_an_error_at_its_line()
    {
        var error = SingleError(MinimalConfig + "\ninstances: []\n");

        Assert.Equal(4, error.Line);
        Assert.Contains("instances", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("# nothing here\n")]
    [InlineData("~\n")]
    public void Empty_configuration_is_an_error(string yaml)
    {
        var error = SingleError(yaml);

        Assert.Equal(1, error.Line);
        Assert.Contains("the configuration is empty", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Second_yaml_document_is_an_error()
    {
        var error = SingleError(MinimalConfig + "\n---\n" + MinimalConfig);

        Assert.Equal(5, error.Line);
        Assert.Contains("one YAML document", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_file_is_a_config_error_naming_the_path()
    {
        using var directory = new TemporaryDirectory();
        var path = Path.Combine(directory.Path, "absent.yml");

        var exception = Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile(path));

        Assert.Equal($"{path}: the configuration file does not exist", exception.Message);
        Assert.IsType<FileNotFoundException>(exception.InnerException);
    }

    [Fact]
    public void Loaded_file_resolves_relative_paths_against_its_own_directory()
    {
        using var directory = new TemporaryDirectory();
        var configDirectory = Directory.CreateDirectory(Path.Combine(directory.Path, "etc")).FullName;
        var path = Path.Combine(configDirectory, "config.yml");
        File.WriteAllText(path, SeedConfig);

        var config = ConfigLoader.LoadFile(path);

        Assert.Equal(configDirectory, config.BaseDirectory);
        Assert.Equal(Path.Combine(configDirectory, "logs", "general.log"), config.Settings.GeneralLog);
        Assert.Equal(Path.Combine(configDirectory, "logs", "intercept.log"), config.Settings.InterceptLog);
        Assert.Equal(Path.Combine(configDirectory, "plugins"), config.Settings.PluginDirectory);
    }

    [Fact]
    public void Errors_in_a_loaded_file_are_prefixed_with_its_path()
    {
        using var directory = new TemporaryDirectory();
        var path = Path.Combine(directory.Path, "config.yml");
        File.WriteAllText(path, "instances: []\n");

        var exception = Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile(path));

        Assert.Equal($"{path}:1:12: instances: at least one instance is required", exception.Message);
    }

    /// <summary>A fresh directory under the system temp folder, deleted with everything in it.</summary>
    private sealed class TemporaryDirectory : IDisposable
    {
        public TemporaryDirectory() =>
            Path = Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pgproxy-tests-" + Guid.NewGuid().ToString("N"))).FullName;

        public string Path { get; }

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
