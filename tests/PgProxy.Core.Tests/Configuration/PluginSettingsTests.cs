using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;

namespace PgProxy.Core.Tests.Configuration;

public class PluginSettingsTests
{
    private const string Instances = """
        instances:
          - listen: {name: proxy, host: 127.0.0.1, port: 6432}
            redirect: {name: db, host: 127.0.0.1, port: 5432}
        """;

    private static ProxyConfig Parse(string settings) => ConfigLoader.Parse($"settings:\n{settings}\n{Instances}", Path.GetTempPath(), "config.yml");

    [Fact]
    public void Defaults_are_five_seconds_and_no_failure_policy_so_each_kind_keeps_its_own()
    {
        ProxyConfig config = ConfigLoader.Parse(Instances, Path.GetTempPath(), "config.yml");

        Assert.Equal(TimeSpan.FromSeconds(5), config.Settings.PluginTimeout);
        Assert.Null(config.Settings.PluginFailure);
    }

    [Fact]
    public void Timeout_and_failure_policy_are_read()
    {
        ProxyConfig config = Parse("  plugin-timeout: 250ms\n  plugin-failure: pass");

        Assert.Equal(TimeSpan.FromMilliseconds(250), config.Settings.PluginTimeout);
        Assert.Equal(InterceptorFailurePolicy.PassThrough, config.Settings.PluginFailure);
    }

    [Theory]
    [InlineData("  plugin-timeout: 0s", "settings.plugin-timeout")]
    [InlineData("  plugin-timeout: 2d", "settings.plugin-timeout")]
    [InlineData("  plugin-timeout: 25h", "settings.plugin-timeout")]
    [InlineData("  plugin-failure: ignore", "settings.plugin-failure")]
    public void Bad_values_name_the_key_and_line(string settings, string key)
    {
        ConfigError error = Assert.Single(Assert.Throws<ConfigException>(() => Parse(settings)).Errors);

        Assert.Equal(key, error.KeyPath);
        Assert.Equal(2, error.Line);
    }
}
