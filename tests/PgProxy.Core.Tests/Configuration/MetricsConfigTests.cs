using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tests.Configuration;

/// <summary>The <c>metrics</c> section: absent means no endpoint, each key has a default, and errors name key and line.</summary>
public class MetricsConfigTests
{
    private const string Instances = """
        instances:
          - listen: {name: proxy, host: 127.0.0.1, port: 6432}
            redirect: {name: db, host: 127.0.0.1, port: 5432}
        """;

    private static ProxyConfig Parse(string metrics) =>
        ConfigLoader.Parse(Instances + "\n" + metrics, Path.GetTempPath(), "config.yml");

    private static ConfigError SingleError(string metrics) =>
        Assert.Single(Assert.Throws<ConfigException>(() => Parse(metrics)).Errors);

    [Theory]
    [InlineData("")]
    [InlineData("metrics:\n")]
    [InlineData("metrics: ~\n")]
    public void No_section_or_an_empty_one_means_no_endpoint(string metrics) => Assert.Null(Parse(metrics).Metrics);

    [Theory]
    [InlineData("metrics: {}\n")]
    [InlineData("metrics: {listen: }\n")]
    [InlineData("metrics: {listen: {}}\n")]
    public void A_section_without_an_address_listens_on_the_default_one(string metrics)
    {
        MetricsConfig config = Parse(metrics).Metrics!;

        Assert.Equal(("127.0.0.1", 9187), (config.Host, config.Port));
    }

    [Fact]
    public void The_documented_shape_is_read()
    {
        MetricsConfig config = Parse("metrics:\n  listen: {host: 0.0.0.0, port: 9500}\n").Metrics!;

        Assert.Equal(new MetricsConfig { Host = "0.0.0.0", Port = 9500 }, config);
    }

    [Fact]
    public void Either_key_of_listen_may_be_left_to_its_default()
    {
        Assert.Equal(new MetricsConfig { Host = "::1" }, Parse("metrics: {listen: {host: '::1'}}\n").Metrics);
        Assert.Equal(new MetricsConfig { Port = 0 }, Parse("metrics: {listen: {port: 0}}\n").Metrics);
    }

    [Theory]
    [InlineData("metrics:\n  lisen: {port: 9187}\n", "metrics.lisen", 5, "unknown key 'lisen'; expected one of listen")]
    [InlineData("metrics:\n  listen: {port: 9187, path: /m}\n", "metrics.listen.path", 5, "unknown key 'path'; expected one of host, port")]
    [InlineData("metrics:\n  listen: {port: 70000}\n", "metrics.listen.port", 5, "expected an integer from 0 to 65535, got '70000'")]
    [InlineData("metrics:\n  listen:\n    port: '9187'\n", "metrics.listen.port", 6, "expected an integer from 0 to 65535, got '9187' (a quoted value is a string; remove the quotes)")]
    [InlineData("metrics:\n  listen: {host: ''}\n", "metrics.listen.host", 5, "expected a non-empty string, got ''")]
    [InlineData("metrics: [127.0.0.1, 9187]\n", "metrics", 4, "expected a mapping with keys listen, got a list")]
    [InlineData("metrics:\n  listen: 9187\n", "metrics.listen", 5, "expected a mapping with keys host, port, got '9187'")]
    public void A_wrong_key_or_value_is_an_error_naming_the_key_and_its_line(string metrics, string keyPath, int line, string message)
    {
        ConfigError error = SingleError(metrics);

        Assert.Equal((keyPath, line, message), (error.KeyPath, error.Line, error.Message));
    }

    [Fact]
    public void Errors_in_the_section_come_with_the_file_name_line_and_column()
    {
        var exception = Assert.Throws<ConfigException>(() => Parse("metrics:\n  listen: {host: 127.0.0.1, port: -1}\n"));

        Assert.Equal("config.yml:5:35: metrics.listen.port: expected an integer from 0 to 65535, got '-1'", exception.Message.Trim());
    }
}
