using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Hosting;
using PgProxy.Core.Interception;
using PgProxy.Core.Plugins;
using PgProxy.Host.Logging;
using PgProxy.Host.Metrics;
using PgProxy.Host.Service;

namespace PgProxy.Host;

/// <summary>What the <c>pgproxy</c> command does: run the instances of a configuration, or check it.</summary>
internal static class Commands
{
    // Exit codes, documented in docs/operations.md ("Exit codes"); scripts and service managers rely on them.
    public const int Success = 0;

    /// <summary>The configuration cannot be read or is not valid (also every <c>check</c> failure).</summary>
    public const int Failure = 1;

    /// <summary>A listening address (an instance's, admin.listen, metrics.listen) cannot be bound.</summary>
    public const int ListenFailure = 2;

    /// <summary>A file the configuration names cannot be used: certificate, key, CA, auth-file, log file.</summary>
    public const int FileFailure = 3;

    /// <summary>A plugin cannot be loaded, or rules need the SQL parser and it is missing.</summary>
    public const int PluginFailure = 4;

    /// <summary>A stop signal came during start-up: 128 + the signal's number, as a shell reports a process it ended.</summary>
    /// <summary>SIGUSR2 on Linux (PosixSignal names no such member; a raw number is accepted).</summary>
    private const PosixSignal SigUsr2 = (PosixSignal)12;

    private static int StoppedDuringStartup(PosixSignal signal) => signal == PosixSignal.SIGINT ? 130 : 143;

    /// <summary><c>pgproxy check</c>: validate, load plugins, print what would run.</summary>
    public static int Check(FileInfo configFile)
    {
        if (!TryLoad(configFile, out ProxyConfig? config)
            || !TryEnvironment(out _)
            || !TrySecurityFiles(config)
            || !TryRulesParser(config)
            || !TryLoadPlugins(config, out InterceptorPipelines? pipelines))
        {
            return Failure;
        }

        using (pipelines)
        {
            Console.Out.WriteLine($"{configFile.FullName}: configuration is valid");
            if (config.Metrics is { } metrics)
            {
                Console.Out.WriteLine($"metrics endpoint: http://{metrics.Host}:{metrics.Port}{MetricsConfig.Path}");
            }

            foreach (LoadedPlugin plugin in pipelines.Plugins)
            {
                Console.Out.WriteLine($"plugin \"{plugin.Name}\": {Describe(plugin.Kind)} {plugin.Path}");
            }

            foreach (InstanceConfig instance in config.Instances)
            {
                Console.Out.WriteLine(Describe(instance));
                Console.Out.WriteLine(DescribeSecurity(instance));
                foreach (RuleConfig rule in instance.Rules)
                {
                    RuleMode mode = config.Settings.RulesMode == RuleMode.LogOnly ? RuleMode.LogOnly : rule.Mode;
                    Console.Out.WriteLine($"  rule \"{rule.Name}\" (config line {rule.Line}, {(mode == RuleMode.LogOnly ? "log-only" : "enforce")}): {Describe(rule)}");
                }

                foreach (MaskConfig mask in instance.Masks)
                {
                    RuleMode mode = config.Settings.RulesMode == RuleMode.LogOnly ? RuleMode.LogOnly : mask.Mode;
                    Console.Out.WriteLine(
                        $"  mask \"{mask.Name}\" (config line {mask.Line}, {(mode == RuleMode.LogOnly ? "log-only" : "enforce")}): {mask.With} on {string.Join(", ", mask.Columns)}" +
                        $"{(mask.Unless.IsEmpty ? "" : ", unless exempt")}, computed {(mask.Computed == MaskPolicy.Refuse ? "refused" : "passed")}, copy {(mask.Copy == MaskPolicy.Refuse ? "refused" : "passed")}");
                }

                foreach ((string kind, InterceptorReference reference, object interceptor) in pipelines.Of(instance))
                {
                    Console.Out.WriteLine($"  {kind}: {reference.Plugin}.{reference.Function} -> {interceptor}");
                }
            }

            Console.Out.WriteLine(Describe(config.Admin));
        }

        return Success;
    }

    /// <summary><c>pgproxy</c>: run every instance until SIGINT or SIGTERM, then drain and exit 0; SIGHUP reloads.</summary>
    /// <param name="configFile">The configuration file, read again on each reload.</param>
    /// <param name="cancellationToken">Stops it, as SIGTERM does.</param>
    /// <param name="takeover">
    /// <c>--takeover</c>: take the listening sockets of the PgProxy running this configuration instead of binding them,
    /// then let it drain and exit (see <see cref="Takeover"/>).
    /// </param>
    public static async Task<int> RunAsync(FileInfo configFile, bool takeover, CancellationToken cancellationToken)
    {
        if (!TryLoad(configFile, out ProxyConfig? config) || !TryEnvironment(out int eventLoops))
        {
            return Failure;
        }

        LoggingSetup logging;
        try
        {
            logging = LoggingSetup.Create(config.Settings, config.QueryLog?.File);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Before any log exists: the one line goes to standard error.
            Console.Error.WriteLine($"pgproxy: cannot start: a log file (settings.general-log, settings.intercept-log or query-log.file) cannot be opened: {e.Message}");
            return FileFailure;
        }

        using LoggingSetup ownedLogging = logging;
        ILogger logger = logging.LoggerFactory.CreateLogger("PgProxy");
        using SystemdNotifier notifier = SystemdNotifier.FromEnvironment(logging.LoggerFactory.CreateLogger("PgProxy.Service"));
        using var shutdown = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        PosixSignal? stopSignal = null;
        using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnStopSignal);
        using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnStopSignal);

        // The server's configuration owner reads the file again on each reload, and re-points the logs and the metrics
        // endpoint with the rest.
        await using var metrics = new MetricsEndpoint(logging.LoggerFactory);
        ProxyServer? running = null;
        using var watcher = new ConfigFileWatcher(configFile.FullName, () => WatchedReloadAsync());
        var source = new ConfigurationSource(config)
        {
            Reload = () => ConfigLoader.LoadFile(configFile.FullName),
            Reloadables = [logging, metrics, watcher],
        };
        string controlPath = Takeover.ControlPath(configFile.FullName);
        System.Net.Sockets.Socket? takeoverControl = null;
        await using var server = new ProxyServer(source, logging.LoggerFactory)
        {
            Inherit = takeover ? InheritAsync : null,
        };
        running = server;
        watcher.Apply(config);
        using PosixSignalRegistration sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, signal =>
        {
            signal.Cancel = true;
            _ = Task.Run(ReloadAsync, CancellationToken.None);
        });
        HostLog.Starting(logger, ThisAssembly.Version, config.Instances.Count, configFile.FullName);
        try
        {
            if (takeover)
            {
                // The old process holds the metrics address until this one accepts on the sockets it handed over.
                await server.StartAsync(shutdown.Token).ConfigureAwait(false);
                // MAINPID= before the old process may exit: systemd must not see its main process end first.
                NotifyReady();
                await Takeover.ConfirmAsync(takeoverControl!, logger, shutdown.Token).ConfigureAwait(false);
                takeoverControl!.Dispose();
                await metrics.StartAsync(config.Metrics, shutdown.Token).ConfigureAwait(false);
            }
            else
            {
                // The endpoint first, so that its exporter hears the first sessions.
                await metrics.StartAsync(config.Metrics, shutdown.Token).ConfigureAwait(false);
                await server.StartAsync(shutdown.Token).ConfigureAwait(false);
            }
        }
        catch (TakeoverException e)
        {
            takeoverControl?.Dispose();
            HostLog.StartFailed(logger, e.Message);
            return ListenFailure;
        }
        catch (OperationCanceledException) when (shutdown.IsCancellationRequested && stopSignal is { } signal)
        {
            HostLog.StoppedDuringStartup(logger, signal);
            return StoppedDuringStartup(signal);
        }
        catch (StartupException e)
        {
            // One line per problem, each naming the instance (or section), the address or file, and the system's reason.
            foreach (string problem in e.Problems)
            {
                HostLog.StartFailed(logger, problem);
            }

            return e.Failure switch
            {
                StartupFailure.Listen => ListenFailure,
                StartupFailure.Files => FileFailure,
                _ => PluginFailure,
            };
        }
        catch (InvalidOperationException e)
        {
            // The metrics endpoint: its only start-up failure is its address.
            HostLog.StartFailed(logger, e.Message);
            return ListenFailure;
        }

        HostLog.Started(logger, config.Instances.Count, ThisAssembly.Version);
        HostLog.EventLoops(logger, eventLoops);
        await using TakeoverControl? control = TakeoverControl.TryStart(controlPath, server, metrics.StopAsync, logger);
        // SIGUSR2: start the successor here, so that under systemd it runs in the service's cgroup and becomes its main
        // process (systemctl kill --kill-whom=main -s SIGUSR2 pgproxy, after installing a new binary).
        using PosixSignalRegistration? sigusr2 = control is null ? null : PosixSignalRegistration.Create(SigUsr2, signal =>
        {
            signal.Cancel = true;
            StartSuccessor();
        });
        // Every instance listens now: a unit ordered After=pgproxy.service may connect. After a hand-over this process
        // is the service's main process from now on (MAINPID=, with the unit's NotifyAccess=all).
        NotifyReady();
        notifier.StartWatchdog();
        // A stop signal, the admin console's SHUTDOWN (which has begun the stop itself), or a hand-over to a new process.
        Task handedOver = control?.HandedOver ?? Task.Delay(Timeout.Infinite, CancellationToken.None);
        await Task.WhenAny(Task.Delay(Timeout.Infinite, shutdown.Token), server.Stopping, handedOver).ConfigureAwait(false);
        if (handedOver.IsCompleted)
        {
            // The service goes on in the new process: STOPPING=1 from here would tell systemd it stops.
            notifier.StopWatchdog();
        }
        else
        {
            notifier.Stopping();
        }

        // Waits for a reload in progress (none applies after this), or joins the console's stop in progress.
        await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
        HostLog.Stopped(logger);
        return Success;

        void OnStopSignal(PosixSignalContext signal)
        {
            signal.Cancel = true;
            HostLog.StopSignal(logger, signal.Signal);
            stopSignal ??= signal.Signal;
            shutdown.Cancel();
        }

        // SIGHUP: the owner reads the file again and applies all of it, or logs every error and keeps what runs.
        async Task ReloadAsync()
        {
            HostLog.Reloading(logger, configFile.FullName);
            notifier.Reloading();
            try
            {
                await server.Configuration.ReloadAsync(CancellationToken.None).ConfigureAwait(false);
            }
            finally
            {
                // A failed reload keeps the running configuration: the service is ready either way.
                NotifyReady();
            }
        }

        // watch-config: the same reload, when the file changed.
        async Task WatchedReloadAsync()
        {
            if (running is null)
            {
                return;
            }

            HostLog.FileChanged(logger, configFile.FullName);
            notifier.Reloading();
            try
            {
                await running.Configuration.ReloadAsync(CancellationToken.None).ConfigureAwait(false);
            }
            finally
            {
                NotifyReady();
            }
        }

        void NotifyReady()
        {
            int listening = running?.Configuration.Current?.Config.Instances.Count ?? config.Instances.Count;
            notifier.Ready(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"Listening: {listening} instance(s)"), mainProcess: takeover);
        }

        void StartSuccessor()
        {
            try
            {
                using var successor = System.Diagnostics.Process.Start(SelfCommand.For(["--config", configFile.FullName, "--takeover"]));
                HostLog.SuccessorStarted(logger, successor?.Id ?? 0);
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                HostLog.TakeoverFailed(logger, $"the successor could not be started: {e.Message}");
            }
        }

        // --takeover: the sockets of the running process, asked for once the configuration and plugins are built.
        async Task<PgProxy.Core.Listening.InheritedListeners> InheritAsync(CancellationToken token)
        {
            (takeoverControl, PgProxy.Core.Listening.InheritedListeners listeners) = await Takeover.RequestAsync(controlPath, logger, token).ConfigureAwait(false);
            return listeners;
        }
    }

    /// <summary>The environment variables PgProxy reads (PGPROXY_EVENT_LOOPS), refused with the reason when malformed.</summary>
    private static bool TryEnvironment(out int eventLoops)
    {
        eventLoops = ProxyServer.EventLoopCount(out string? problem);
        if (problem is not null)
        {
            Console.Error.WriteLine($"pgproxy: {problem}");
        }

        return problem is null;
    }

    /// <summary>Rules split, scan and parse every statement with libpg_query: an instance with rules needs it installed.</summary>
    private static bool TryRulesParser(ProxyConfig config)
    {
        if (PgProxy.Sql.PostgresParser.AvailabilityProblem is not { } problem)
        {
            return true;
        }

        bool ok = true;
        foreach (InstanceConfig instance in config.Instances.Where(instance => instance.Rules.Count > 0 || instance.Masks.Count > 0))
        {
            Console.Error.WriteLine($"pgproxy: instance \"{instance.Listen.Name}\" has rules or masks, which need the PostgreSQL parser: {problem}");
            ok = false;
        }

        return ok;
    }

    /// <summary>What a rule does, in a few words: its actions.</summary>
    private static string Describe(RuleConfig rule)
    {
        var actions = new List<string>(4);
        if (rule.Refuse is { } refusal)
        {
            actions.Add($"refuse with {refusal.SqlState}");
        }

        if (rule.Rewrite is not null)
        {
            actions.Add("rewrite");
        }

        if (rule.Tag is not null)
        {
            actions.Add($"tag /* {rule.Tag} */");
        }

        if (rule.Log)
        {
            actions.Add("log");
        }

        return string.Join(", ", actions) + (rule.Continue ? ", continue" : "");
    }

    /// <summary>Reads every certificate, key, CA and auth file, so a bad path is reported by check, naming the file.</summary>
    private static bool TrySecurityFiles(ProxyConfig config)
    {
        IReadOnlyList<string> problems = ProxyServer.CheckSecurityFiles(config);
        foreach (string problem in problems)
        {
            Console.Error.WriteLine($"pgproxy: {problem}");
        }

        return problems.Count == 0;
    }

    internal static bool TryLoad(FileInfo configFile, [NotNullWhen(true)] out ProxyConfig? config)
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

        return true;
    }

    /// <summary>
    /// Loads the configuration's plugins and resolves every interceptor entry, so that a missing or mistyped function
    /// is reported with its line; every failing entry is reported, not just the first.
    /// </summary>
    private static bool TryLoadPlugins(ProxyConfig config, [NotNullWhen(true)] out InterceptorPipelines? pipelines)
    {
        var problems = new List<string>();
        pipelines = InterceptorPipelines.Load(config, NullLoggerFactory.Instance, problems);
        foreach (string problem in problems)
        {
            Console.Error.WriteLine($"pgproxy: {problem}");
        }

        return pipelines is not null;
    }

    private static string Describe(PluginKind kind) => kind switch
    {
        PluginKind.SourceFile => "C# source file",
        PluginKind.SourceDirectory => "C# source folder",
        _ => "compiled assembly",
    };

    private static string Describe(InstanceConfig instance) =>
        $"instance \"{instance.Listen.Name}\": listen {instance.Listen.Host}:{instance.Listen.Port} -> " +
        $"upstream \"{instance.Redirect.Name}\" {instance.Redirect.Host}:{instance.Redirect.Port}, " +
        $"max-message-size {instance.Limits.MaxMessageSize} bytes, " +
        $"max-connections {(instance.Limits.MaxConnections == 0 ? "unlimited" : instance.Limits.MaxConnections.ToString(System.Globalization.CultureInfo.InvariantCulture))}";

    private static string Describe(AdminConfig? admin) => admin switch
    {
        null => "admin console: none (database \"pgproxy\" is relayed like any other)",
        { Listen: { } listen } =>
            $"admin console: database \"{AdminConfig.Database}\" on every instance, and {listen.Host}:{listen.Port} (TLS {admin.Tls.Mode.ToString().ToLowerInvariant()}); users {string.Join(", ", admin.Users)}, verifiers from {admin.AuthFile}",
        _ => $"admin console: database \"{AdminConfig.Database}\" on every instance; users {string.Join(", ", admin.Users)}, verifiers from {admin.AuthFile}",
    };

    private static string DescribeSecurity(InstanceConfig instance)
    {
        string listen = instance.ListenTls.Enabled
            ? $"client TLS {instance.ListenTls.Mode.ToString().ToLowerInvariant()} ({instance.ListenTls.CertFile})"
            : "client TLS disabled";
        string upstream = instance.UpstreamTls.Mode switch
        {
            UpstreamTlsMode.VerifyCa => "verify-ca",
            UpstreamTlsMode.VerifyFull => "verify-full",
            UpstreamTlsMode mode => mode.ToString().ToLowerInvariant(),
        };
        string auth = instance.Auth switch
        {
            null => "no auth section",
            { AuthFile: { } file } => $"SCRAM verifiers from {file}",
            { } query => $"SCRAM verifiers by auth-query as \"{query.AuthUser}\"",
        };
        return $"  {listen}, upstream TLS {upstream}, {auth}";
    }
}
