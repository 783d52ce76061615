using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tests.Configuration;

/// <summary>The keys of issue 16's limits and keepalives: defaults, values, and errors that name the key and its line.</summary>
public sealed class ReliabilityConfigTests
{
    private const string BaseDirectory = "/etc/pgproxy";

    private static ProxyConfig Parse(string yaml) => ConfigLoader.Parse(yaml, BaseDirectory, "config.yml");

    private static ConfigError SingleError(string yaml) => Assert.Single(Assert.Throws<ConfigException>(() => Parse(yaml)).Errors);

    private static string Instance(string listenExtra = "", string redirectExtra = "", string instanceExtra = "") => $$"""
        instances:
          - listen:
              name: proxy
              host: 127.0.0.1
              port: 6432
        {{listenExtra}}
            redirect:
              name: db
              host: 127.0.0.1
              port: 5432
        {{redirectExtra}}
        {{instanceExtra}}
        """;

    [Fact]
    public void Without_the_keys_the_defaults_apply()
    {
        InstanceConfig instance = Parse(Instance()).Instances[0];

        Assert.Equal(16L << 20, instance.Limits.MaxInterceptedSize);
        Assert.Null(instance.Limits.ClientIdleTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), instance.Limits.ServerLoginTimeout);
        Assert.Equal(KeepaliveConfig.SystemDefault, instance.ListenKeepalive);
        Assert.Equal(KeepaliveConfig.SystemDefault, instance.RedirectKeepalive);
    }

    [Fact]
    public void Limits_and_keepalives_are_read()
    {
        InstanceConfig instance = Parse(Instance(
            "      keepalive: {idle: 60s, interval: 10s, count: 6}",
            "      keepalive: {idle: 2m}",
            "    limits: {max-intercepted-size: 4MB, client-idle-timeout: 15m, server-login-timeout: 5s}")).Instances[0];

        Assert.Equal(4L << 20, instance.Limits.MaxInterceptedSize);
        Assert.Equal(TimeSpan.FromMinutes(15), instance.Limits.ClientIdleTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), instance.Limits.ServerLoginTimeout);
        Assert.Equal(new KeepaliveConfig { Idle = TimeSpan.FromSeconds(60), Interval = TimeSpan.FromSeconds(10), Count = 6 }, instance.ListenKeepalive);
        Assert.Equal(TimeSpan.FromSeconds(120), instance.ListenKeepalive.Bound);
        Assert.Equal(new KeepaliveConfig { Idle = TimeSpan.FromMinutes(2) }, instance.RedirectKeepalive);
        Assert.Null(instance.RedirectKeepalive.Bound);
    }

    [Fact]
    public void A_client_idle_timeout_of_0_is_off()
    {
        Assert.Null(Parse(Instance(instanceExtra: "    limits: {client-idle-timeout: 0}")).Instances[0].Limits.ClientIdleTimeout);
    }

    [Theory]
    [InlineData("max-intercepted-size: 1", "instances[0].limits.max-intercepted-size", "expected a size from 1 kB to 2147483647 bytes")]
    [InlineData("client-idle-timeout: soon", "instances[0].limits.client-idle-timeout", "expected a duration (seconds")]
    [InlineData("server-login-timeout: 0", "instances[0].limits.server-login-timeout", "expected a duration greater than zero")]
    [InlineData("server-login-timeout: [1]", "instances[0].limits.server-login-timeout", "expected a duration greater than zero")]
    [InlineData("client-idle-timout: 1s", "instances[0].limits.client-idle-timout", "unknown key")]
    public void Wrong_limits_name_the_key_and_its_line(string line, string keyPath, string message)
    {
        ConfigError error = SingleError(Instance(instanceExtra: $"    limits:\n      {line}"));

        Assert.Equal(keyPath, error.KeyPath);
        Assert.Equal(13, error.Line);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("idle: 1.5s", "instances[0].listen.keepalive.idle", "expected whole seconds")]
    [InlineData("interval: 0", "instances[0].listen.keepalive.interval", "expected a duration greater than zero")]
    [InlineData("count: 128", "instances[0].listen.keepalive.count", "expected an integer from 1 to 127")]
    [InlineData("idle: 10h", "instances[0].listen.keepalive.idle", "at most")]
    [InlineData("probes: 3", "instances[0].listen.keepalive.probes", "unknown key")]
    public void Wrong_keepalives_name_the_key_and_its_line(string line, string keyPath, string message)
    {
        ConfigError error = SingleError(Instance(listenExtra: $"      keepalive:\n        {line}"));

        Assert.Equal(keyPath, error.KeyPath);
        Assert.Equal(7, error.Line);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_keepalive_that_is_not_a_mapping_names_its_key()
    {
        ConfigError error = SingleError(Instance(redirectExtra: "      keepalive: 60"));

        Assert.Equal("instances[0].redirect.keepalive", error.KeyPath);
        Assert.Equal(11, error.Line);
    }
}
