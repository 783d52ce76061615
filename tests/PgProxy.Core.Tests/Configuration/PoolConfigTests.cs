using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tests.Configuration;

/// <summary>The <c>pool</c> section: its defaults, its keys, and the errors that name them.</summary>
public sealed class PoolConfigTests
{
    private static readonly string BaseDirectory = Path.Combine(Path.GetTempPath(), "pgproxy-pool-config-tests-base");

    [Fact]
    public void Without_a_pool_section_there_is_one_server_connection_per_client()
    {
        PoolConfig pool = Parse("").Instances[0].Pool;

        Assert.Equal(PoolMode.None, pool.Mode);
        Assert.False(pool.Pools);
        Assert.Equal(
            (20, 0, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(10), TimeSpan.FromHours(1), "DISCARD ALL", 1000),
            (pool.Size, pool.MinIdle, pool.QueueTimeout, pool.ServerIdleTimeout, pool.ServerLifetime, pool.ResetQuery, pool.PreparedStatements));
    }

    [Fact]
    public void Every_key_is_read()
    {
        PoolConfig pool = Parse("""
                pool:
                  mode: none
                  size: 5
                  min-idle: 2
                  queue-timeout: 3s
                  server-idle-timeout: 2m
                  server-lifetime: 30m
                  reset-query: ''
                  prepared-statements: 0
            """).Instances[0].Pool;

        Assert.Equal(
            (5, 2, TimeSpan.FromSeconds(3), TimeSpan.FromMinutes(2), TimeSpan.FromMinutes(30), "", 0),
            (pool.Size, pool.MinIdle, pool.QueueTimeout, pool.ServerIdleTimeout, pool.ServerLifetime, pool.ResetQuery, pool.PreparedStatements));
    }

    [Theory]
    [InlineData("pool: {mode: bouncy}", "instances[0].pool.mode", 6)]
    [InlineData("pool: {size: 0}", "instances[0].pool.size", 6)]
    [InlineData("pool: {size: 2, min-idle: 3}", "instances[0].pool.min-idle", 6)]
    [InlineData("pool: {queue-timeout: 0s}", "instances[0].pool.queue-timeout", 6)]
    [InlineData("pool: {idle: 3}", "instances[0].pool.idle", 6)]
    [InlineData("pool: {mode: transaction}", "instances[0].pool.mode", 6)]
    public void A_bad_value_is_an_error_naming_the_key_and_line(string section, string key, int line)
    {
        ConfigError error = Assert.Single(Assert.Throws<ConfigException>(() => Parse("    " + section)).Errors);

        Assert.Equal((key, line), (error.KeyPath, error.Line));
    }

    [Fact]
    public void Pooling_without_an_auth_section_says_why_it_needs_one()
    {
        ConfigException error = Assert.Throws<ConfigException>(() => Parse("    pool: {mode: session}"));

        Assert.Contains(error.Errors, e => e.Message.Contains("needs an auth section", StringComparison.Ordinal) && e.KeyPath == "instances[0].pool.mode");
    }

    [Fact]
    public void Transaction_mode_loads_with_its_statement_cache_size()
    {
        ProxyConfig config = Parse("    auth: {auth-file: /etc/pgproxy/users.txt}\n    pool: {mode: transaction, prepared-statements: 50}");

        Assert.Equal((PoolMode.Transaction, 50), (config.Instances[0].Pool.Mode, config.Instances[0].Pool.PreparedStatements));
    }

    private static ProxyConfig Parse(string instanceExtra) => ConfigLoader.Parse(
        $"""
        settings:
          log-level: info
        instances:
          - listen: {"{"}name: proxy, host: 127.0.0.1, port: 6432{"}"}
            redirect: {"{"}name: db, host: 127.0.0.1, port: 5432{"}"}
        {instanceExtra}
        """,
        BaseDirectory,
        "config.yml");
}
