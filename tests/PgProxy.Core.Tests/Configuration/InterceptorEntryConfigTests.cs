using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;

namespace PgProxy.Core.Tests.Configuration;

/// <summary>The per-entry keys of <c>intercept.commands.queries</c>, <c>intercept.commands.connects</c> and <c>intercept.responses</c>.</summary>
public class InterceptorEntryConfigTests
{
    /// <summary>Line 9 is the entry's first key, line 10 the key under test.</summary>
    private static ProxyConfig Parse(string list, string key, string settings = "") => ConfigLoader.Parse(
        $"""
        plugins: [audit]
        settings: {"{"}{settings}{"}"}
        instances:
          - listen: {"{"}name: proxy, host: 127.0.0.1, port: 6432{"}"}
            redirect: {"{"}name: db, host: 127.0.0.1, port: 5432{"}"}
            intercept:
        {Section(list)}
                  - plugin: audit
                    {key}
                    function: check
        """,
        Path.GetTempPath(),
        "config.yml");

    /// <summary>Two lines, so that every list's entries start on line 9.</summary>
    private static string Section(string list) => list == "responses"
        ? "      commands:\n      responses:"
        : $"      commands:\n        {list}:";

    private static InterceptorReference Entry(ProxyConfig config, string list)
    {
        InterceptConfig intercept = Assert.Single(config.Instances).Intercept;
        return Assert.Single(list switch
        {
            "queries" => intercept.Queries,
            "connects" => intercept.Connects,
            _ => intercept.Responses,
        });
    }

    private static string PathOf(string list) => list == "responses" ? "instances[0].intercept.responses[0]" : $"instances[0].intercept.commands.{list}[0]";

    [Theory]
    [InlineData("queries")]
    [InlineData("connects")]
    [InlineData("responses")]
    public void On_error_and_timeout_are_read_on_every_list(string list)
    {
        InterceptorReference pass = Entry(Parse(list, "on-error: pass\n            timeout: 250ms"), list);
        InterceptorReference refuse = Entry(Parse(list, "on-error: REFUSE"), list);

        Assert.Equal(new InterceptorReference("audit", "check", 9) { OnError = InterceptorFailurePolicy.PassThrough, Timeout = TimeSpan.FromMilliseconds(250) }, pass);
        Assert.Equal(InterceptorFailurePolicy.Refuse, refuse.OnError);
        Assert.Null(refuse.Timeout);
    }

    [Theory]
    [InlineData("queries")]
    [InlineData("connects")]
    [InlineData("responses")]
    public void Without_the_keys_an_entry_leaves_both_to_the_settings_and_its_kind(string list)
    {
        ProxyConfig config = Parse(list, "");

        Assert.Equal(new InterceptorReference("audit", "check", 9), Entry(config, list));
        Assert.Null(config.Settings.PluginFailure);
        Assert.Equal(TimeSpan.FromSeconds(5), config.Settings.PluginTimeout);
    }

    [Theory]
    [InlineData("queries", "on-error: ignore", "on-error", "expected one of refuse, pass, got 'ignore'")]
    [InlineData("connects", "on-error: [pass]", "on-error", "expected one of refuse, pass, got a list")]
    [InlineData("responses", "timeout: 0s", "timeout", "expected a duration greater than zero and at most 24h (seconds, or with unit ms, s, m or h such as 10s), got '0s'")]
    [InlineData("queries", "timeout: soon", "timeout", "expected a duration greater than zero and at most 24h (seconds, or with unit ms, s, m or h such as 10s), got 'soon'")]
    [InlineData("connects", "timeout: 25h", "timeout", "expected a duration greater than zero and at most 24h (seconds, or with unit ms, s, m or h such as 10s), got '25h'")]
    [InlineData("responses", "timeout: {s: 1}", "timeout", "expected a duration greater than zero and at most 24h (seconds, or with unit ms, s, m or h such as 10s), got a mapping")]
    public void A_bad_value_names_the_key_and_its_line(string list, string key, string name, string message)
    {
        ConfigError error = Assert.Single(Assert.Throws<ConfigException>(() => Parse(list, key)).Errors);

        Assert.Equal(($"{PathOf(list)}.{name}", 10, message), (error.KeyPath, error.Line, error.Message));
    }

    [Theory]
    [InlineData("on_error: pass", "on_error", "unknown key 'on_error'; keys are hyphenated: did you mean 'on-error'?")]
    [InlineData("retries: 3", "retries", "unknown key 'retries'; expected one of plugin, function, on-error, timeout")]
    public void An_unknown_key_names_itself_and_its_line(string key, string name, string message)
    {
        ConfigError error = Assert.Single(Assert.Throws<ConfigException>(() => Parse("queries", key)).Errors);

        Assert.Equal(($"{PathOf("queries")}.{name}", 10, message), (error.KeyPath, error.Line, error.Message));
    }

    [Fact]
    public void Settings_give_the_defaults_of_entries_that_set_nothing()
    {
        ProxyConfig config = Parse("queries", "", "plugin-failure: refuse, plugin-timeout: 2s");

        Assert.Equal(InterceptorFailurePolicy.Refuse, config.Settings.PluginFailure);
        Assert.Equal(TimeSpan.FromSeconds(2), config.Settings.PluginTimeout);
        Assert.Null(Entry(config, "queries").OnError);
    }
}
