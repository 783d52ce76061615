using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Hosting;
using PgProxy.Host.Logging;

namespace PgProxy.Host;

/// <summary>What the <c>pgproxy</c> command does: run the instances of a configuration, or check it.</summary>
internal static class Commands
{
    public const int Success = 0;
    public const int Failure = 1;

    /// <summary><c>pgproxy check</c>: validate, load plugins, print what would run.</summary>
    public static int Check(FileInfo configFile)
    {
        if (!TryLoad(configFile, out ProxyConfig? config))
        {
            return Failure;
        }

        Console.Out.WriteLine($"{configFile.FullName}: configuration is valid");
        foreach (InstanceConfig instance in config.Instances)
        {
            Console.Out.WriteLine(Describe(instance));
        }

        return Success;
    }

    /// <summary><c>pgproxy</c>: run every instance until SIGINT or SIGTERM, then drain and exit 0.</summary>
    public static async Task<int> RunAsync(FileInfo configFile, CancellationToken cancellationToken)
    {
        if (!TryLoad(configFile, out ProxyConfig? config))
        {
            return Failure;
        }

        using ILoggerFactory loggerFactory = LoggingSetup.Create(config.Settings);
        ILogger logger = loggerFactory.CreateLogger("PgProxy");
        using var shutdown = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnStopSignal);
        using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnStopSignal);
        using PosixSignalRegistration sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, signal =>
        {
            // Reloading arrives with rules and plugins; until then SIGHUP must not end the process.
            signal.Cancel = true;
            HostLog.ReloadNotAvailable(logger);
        });

        await using var server = new ProxyServer(config, loggerFactory);
        try
        {
            await server.StartAsync(shutdown.Token).ConfigureAwait(false);
        }
        catch (InvalidOperationException e)
        {
            HostLog.StartFailed(logger, e.Message);
            return Failure;
        }

        HostLog.Started(logger, config.Instances.Count, ThisAssembly.Version);
        try
        {
            await Task.Delay(Timeout.Infinite, shutdown.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // A stop signal: drain below.
        }

        await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
        HostLog.Stopped(logger);
        return Success;

        void OnStopSignal(PosixSignalContext signal)
        {
            signal.Cancel = true;
            HostLog.StopSignal(logger, signal.Signal);
            shutdown.Cancel();
        }
    }

    private static bool TryLoad(FileInfo configFile, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ProxyConfig? config)
    {
        config = null;
        try
        {
            config = ConfigLoader.LoadFile(configFile.FullName);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"pgproxy: invalid configuration:{Environment.NewLine}{e.Message}");
            return false;
        }

        // Plugin loading is not part of this version: a configuration that lists a plugin cannot run as intended.
        if (config.Plugins.Count > 0)
        {
            foreach (PluginReference plugin in config.Plugins)
            {
                Console.Error.WriteLine($"pgproxy: {configFile.Name}:{plugin.Line}: plugins: plugin \"{plugin.Name}\" cannot be loaded: this version of PgProxy does not load plugins yet");
            }

            config = null;
            return false;
        }

        return true;
    }

    private static string Describe(InstanceConfig instance) =>
        $"instance \"{instance.Listen.Name}\": listen {instance.Listen.Host}:{instance.Listen.Port} -> " +
        $"upstream \"{instance.Redirect.Name}\" {instance.Redirect.Host}:{instance.Redirect.Port}, " +
        $"max-message-size {instance.Limits.MaxMessageSize} bytes, " +
        $"max-connections {(instance.Limits.MaxConnections == 0 ? "unlimited" : instance.Limits.MaxConnections.ToString(System.Globalization.CultureInfo.InvariantCulture))}";
}
