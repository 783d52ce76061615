using System.Net;
using Microsoft.Extensions.Logging;
using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.Core.Hosting;
using PgProxy.Core.Interception;

namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A PgProxy running in the test process (the engine used as a library), listening on a free port of
/// 127.0.0.1 and relaying to a test server. Its log lines are kept for assertions.
/// </summary>
public sealed class ProxyHarness : IAsyncDisposable
{
    private ProxyHarness(ProxyServer server, ProxyConfig config, CapturingLoggerProvider logs)
    {
        Server = server;
        Config = config;
        Logs = logs;
    }

    public ProxyServer Server { get; }

    public ProxyConfig Config { get; }

    public CapturingLoggerProvider Logs { get; }

    /// <summary>The port of the first instance.</summary>
    public int Port => PortOf(Config.Instances[0].Listen.Name);

    public string Host { get; } = IPAddress.Loopback.ToString();

    /// <summary>Starts one instance named "proxy" relaying to <paramref name="upstream"/>.</summary>
    public static Task<ProxyHarness> StartAsync(PostgresServer upstream, InstanceLimits? limits = null, CancellationToken cancellationToken = default) =>
        StartAsync(TestConfigs.Relay(upstream.Host, upstream.Port, limits), cancellationToken);

    /// <summary>Starts one instance named "proxy" relaying to <paramref name="upstream"/> through <paramref name="interceptors"/>.</summary>
    public static Task<ProxyHarness> StartAsync(PostgresServer upstream, InstanceInterceptors interceptors, CancellationToken cancellationToken = default) =>
        StartAsync(TestConfigs.Relay(upstream.Host, upstream.Port), _ => interceptors, cancellationToken);

    public static async Task<ProxyHarness> StartAsync(ProxyConfig config, CancellationToken cancellationToken = default) =>
        await StartAsync(config, null, cancellationToken);

    public static async Task<ProxyHarness> StartAsync(ProxyConfig config, Func<InstanceConfig, InstanceInterceptors>? interceptors, CancellationToken cancellationToken = default)
    {
        var logs = new CapturingLoggerProvider();
        var loggerFactory = LoggerFactory.Create(builder => builder.SetMinimumLevel(LogLevel.Debug).AddProvider(logs));
        var server = new ProxyServer(config, loggerFactory, interceptors: interceptors);
        await server.StartAsync(cancellationToken);
        return new ProxyHarness(server, config, logs);
    }

    public int PortOf(string instanceName) => Server.GetEndpoints(instanceName)[0].Port;

    /// <summary>An Npgsql connection string to the proxy (pooling off: every open is a new proxy session).</summary>
    public string ConnectionString(string user, string? password = null, string database = PostgresServer.Database, string? instance = null)
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = instance is null ? Port : PortOf(instance),
            Username = user,
            Password = password,
            Database = database,
            Pooling = false,
            Timeout = 15,
            CommandTimeout = 60,
        };
        return builder.ConnectionString;
    }

    public PsqlTarget PsqlTarget(string user, string? password = null, string database = PostgresServer.Database) =>
        new(Host, Port, user, database, password);

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        Logs.Dispose();
    }
}

/// <summary>Configurations for tests, built as records: no file needed.</summary>
public static class TestConfigs
{
    public static ProxyConfig Relay(string upstreamHost, int upstreamPort, InstanceLimits? limits = null, string instanceName = "proxy") =>
        new([], new ProxySettings { ShutdownTimeout = TimeSpan.FromSeconds(5) }, [Instance(instanceName, upstreamHost, upstreamPort, limits)], Path.GetTempPath());

    public static InstanceConfig Instance(string name, string upstreamHost, int upstreamPort, InstanceLimits? limits = null) =>
        new(
            new EndpointConfig(name, "127.0.0.1", 0),
            new EndpointConfig("postgresql", upstreamHost, upstreamPort),
            InterceptConfig.None,
            limits ?? InstanceLimits.Default);
}
