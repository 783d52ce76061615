using System.Globalization;
using System.Runtime.InteropServices;
using Npgsql;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Packaging;

/// <summary>
/// Compiled source plugins are kept in a cache keyed by their sources and PgProxy's version: a restart or a reload
/// with unchanged sources compiles nothing, a changed source compiles again, and the cached plugin works.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class PluginCacheTests(PostgresFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private const string Plugin = """
        public static class Tagger
        {
            public static string RewriteQuery(string query, ISessionContext session) => query.Replace("'original'", "'MARK'", StringComparison.Ordinal);
        }
        """;

    [Fact]
    public async Task A_restart_with_unchanged_sources_loads_from_the_cache_and_a_changed_source_compiles_again()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Config(fixture.Server));
        string source = Path.Combine(directory.Path, "tagger.cs");
        await File.WriteAllTextAsync(source, Plugin.Replace("MARK", "first", StringComparison.Ordinal));
        string cache = Path.Combine(directory.Path, ".pgproxy-plugin-cache");

        await using (ProxyProcess first = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, environment: NoCacheVariable))
        {
            Assert.Contains("Plugin tagger: compiled, kept in the plugin cache as " + cache, first.Output, StringComparison.Ordinal);
            Assert.Equal("first", await QueryAsync(first));
        }

        Assert.Single(Directory.GetFiles(cache, "tagger-*.dll"));

        await using (ProxyProcess second = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, environment: NoCacheVariable))
        {
            Assert.Contains("Plugin tagger: unchanged sources, loaded from the plugin cache " + cache, second.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("compiled, kept", second.Output, StringComparison.Ordinal);
            Assert.Equal("first", await QueryAsync(second));

            // A reload with a changed source compiles it again, and replaces the entry of the old one.
            await File.WriteAllTextAsync(source, Plugin.Replace("MARK", "second", StringComparison.Ordinal));
            await second.SignalAsync(PosixSignal.SIGHUP);
            await second.WaitForOutputAsync(output => output.Contains("Plugin tagger: compiled, kept", StringComparison.Ordinal) && output.Contains("Configuration reloaded", StringComparison.Ordinal), Deadline, "the reload to compile the changed plugin");
            Assert.Equal("second", await QueryAsync(second));
        }

        Assert.Single(Directory.GetFiles(cache, "tagger-*.dll"));
    }

    [Fact]
    public async Task PGPROXY_PLUGIN_CACHE_names_the_folder_and_off_turns_the_cache_off()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Config(fixture.Server));
        await File.WriteAllTextAsync(Path.Combine(directory.Path, "tagger.cs"), Plugin);
        string elsewhere = Path.Combine(directory.Path, "cache-elsewhere");

        await using (ProxyProcess named = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, environment: new Dictionary<string, string> { ["PGPROXY_PLUGIN_CACHE"] = elsewhere }))
        {
            Assert.Contains("kept in the plugin cache as " + elsewhere, named.Output, StringComparison.Ordinal);
        }

        await using (ProxyProcess off = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, environment: new Dictionary<string, string> { ["PGPROXY_PLUGIN_CACHE"] = "off" }))
        {
            Assert.DoesNotContain("plugin cache", off.Output, StringComparison.Ordinal);
            Assert.Equal("MARK", await QueryAsync(off));
        }

        Assert.Single(Directory.GetFiles(elsewhere, "tagger-*.dll"));
        Assert.False(Directory.Exists(Path.Combine(directory.Path, ".pgproxy-plugin-cache")), "nothing written beside the configuration");
    }

    private static readonly Dictionary<string, string> NoCacheVariable = new() { ["PGPROXY_PLUGIN_CACHE"] = "" };

    private static string Config(PostgresServer server) => string.Create(CultureInfo.InvariantCulture, $"""
        plugins:
          - tagger
        settings:
          log-level: info
          plugin-dir: .
        instances:
          - listen:
              name: proxy
              host: 127.0.0.1
              port: 0
            redirect:
              name: postgresql
              host: {server.Host}
              port: {server.Port}
            intercept:
              commands:
                queries:
                  - plugin: tagger
                    function: rewrite_query
        """);

    private static async Task<string?> QueryAsync(ProxyProcess proxy)
    {
        await using var connection = new NpgsqlConnection(proxy.NpgsqlConnectionString("plugin-cache"));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT 'original'", connection);
        return (string?)await command.ExecuteScalarAsync();
    }
}
