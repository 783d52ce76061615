using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Abstractions;
using PgProxy.Core.Hosting;
using PgProxy.Core.Interception;
using PgProxy.Core.Plugins;
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
        if (!TryLoad(configFile, out ProxyConfig? config)
            || !TryEnvironment(out _)
            || !TrySecurityFiles(config)
            || !TryLoadPlugins(config, NullLoggerFactory.Instance, out PluginCatalog? catalog, out Interceptors? interceptors))
        {
            return Failure;
        }

        using (catalog)
        {
            Console.Out.WriteLine($"{configFile.FullName}: configuration is valid");
            foreach (LoadedPlugin plugin in catalog.Plugins)
            {
                Console.Out.WriteLine($"plugin \"{plugin.Name}\": {Describe(plugin.Kind)} {plugin.Path}");
            }

            foreach (InstanceConfig instance in config.Instances)
            {
                Console.Out.WriteLine(Describe(instance));
                Console.Out.WriteLine(DescribeSecurity(instance));
                foreach ((string kind, InterceptorReference reference, object interceptor) in interceptors.Of(instance))
                {
                    Console.Out.WriteLine($"  {kind}: {reference.Plugin}.{reference.Function} -> {interceptor}");
                }
            }
        }

        return Success;
    }

    /// <summary><c>pgproxy</c>: run every instance until SIGINT or SIGTERM, then drain and exit 0.</summary>
    public static async Task<int> RunAsync(FileInfo configFile, CancellationToken cancellationToken)
    {
        if (!TryLoad(configFile, out ProxyConfig? config) || !TryEnvironment(out int eventLoops))
        {
            return Failure;
        }

        using ILoggerFactory loggerFactory = LoggingSetup.Create(config.Settings);
        ILogger logger = loggerFactory.CreateLogger("PgProxy");

        // Loaded for the server's lifetime: the interceptors' code lives in the catalog's load contexts.
        if (!TryLoadPlugins(config, loggerFactory, out PluginCatalog? catalog, out Interceptors? interceptors))
        {
            return Failure;
        }

        PluginCatalog running = catalog;
        using var shutdown = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var reloading = new SemaphoreSlim(1, 1);
        using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnStopSignal);
        using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnStopSignal);
        await using var server = new ProxyServer(config, loggerFactory, interceptors: instance => interceptors.For(instance, config.Settings));
        using PosixSignalRegistration sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, signal =>
        {
            signal.Cancel = true;
            _ = Task.Run(ReloadAsync, CancellationToken.None);
        });
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
        HostLog.EventLoops(logger, eventLoops);
        try
        {
            await Task.Delay(Timeout.Infinite, shutdown.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // A stop signal: drain below.
        }

        await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await reloading.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        running.Dispose();
        HostLog.Stopped(logger);
        return Success;

        void OnStopSignal(PosixSignalContext signal)
        {
            signal.Cancel = true;
            HostLog.StopSignal(logger, signal.Signal);
            shutdown.Cancel();
        }

        // SIGHUP: read the file again, load its plugins, and give new sessions the new interceptors. Anything that
        // fails keeps the running configuration. Sessions already open keep what they started with; the old plugins'
        // code is unloaded once the last of them ends.
        async Task ReloadAsync()
        {
            await reloading.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                if (shutdown.IsCancellationRequested)
                {
                    return;
                }

                HostLog.Reloading(logger, configFile.FullName);
                var problems = new List<string>();
                if (!TryLoad(configFile, out ProxyConfig? next, problems.Add)
                    || !TryLoadPlugins(next, loggerFactory, out PluginCatalog? nextCatalog, out Interceptors? nextInterceptors, problems.Add))
                {
                    HostLog.ReloadFailed(logger, string.Join(Environment.NewLine, problems));
                    return;
                }

                // Certificates, keys and verifiers are read again, so renewed files serve new sessions.
                problems.AddRange(server.ReloadSecurity(next));
                if (problems.Count > 0)
                {
                    nextCatalog.Dispose();
                    HostLog.ReloadFailed(logger, string.Join(Environment.NewLine, problems));
                    return;
                }

                foreach (string change in ChangesNeedingRestart(config, next))
                {
                    HostLog.ReloadNeedsRestart(logger, change);
                }

                server.ReplaceInterceptors(name =>
                    next.Instances.FirstOrDefault(i => i.Listen.Name == name) is { } instance ? nextInterceptors.For(instance, next.Settings) : null);
                PluginCatalog previous = running;
                running = nextCatalog;
                previous.Dispose();
                HostLog.Reloaded(logger, nextCatalog.Plugins.Count);
            }
            finally
            {
                reloading.Release();
            }
        }
    }

    /// <summary>What a reload does not apply: listening, upstreams, limits and logging are read at start only.</summary>
    private static IEnumerable<string> ChangesNeedingRestart(ProxyConfig running, ProxyConfig next)
    {
        foreach (InstanceConfig instance in next.Instances)
        {
            InstanceConfig? current = running.Instances.FirstOrDefault(i => i.Listen.Name == instance.Listen.Name);
            if (current is null)
            {
                yield return $"instance \"{instance.Listen.Name}\" is new";
            }
            else if (current.Listen != instance.Listen || current.Redirect != instance.Redirect || current.Limits != instance.Limits)
            {
                yield return $"instance \"{instance.Listen.Name}\": listen, redirect or limits changed";
            }
        }

        foreach (InstanceConfig instance in running.Instances.Where(i => next.Instances.All(n => n.Listen.Name != i.Listen.Name)))
        {
            yield return $"instance \"{instance.Listen.Name}\" was removed";
        }

        ProxySettings a = running.Settings with { PluginTimeout = default, PluginFailure = default, PluginDirectory = string.Empty };
        ProxySettings b = next.Settings with { PluginTimeout = default, PluginFailure = default, PluginDirectory = string.Empty };
        if (a != b)
        {
            yield return "logging or shutdown settings changed";
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

    private static bool TryLoad(FileInfo configFile, [NotNullWhen(true)] out ProxyConfig? config, Action<string>? report = null)
    {
        report ??= message => Console.Error.WriteLine($"pgproxy: {message}");
        config = null;
        try
        {
            config = ConfigLoader.LoadFile(configFile.FullName);
        }
        catch (ConfigException e)
        {
            report($"invalid configuration:{Environment.NewLine}{e.Message}");
            return false;
        }

        return true;
    }

    /// <summary>
    /// Loads the configuration's plugins and resolves every query, start-up and response interceptor entry, so that a missing or
    /// mistyped function is reported with its line before anything listens. Every failing entry is reported, not just the first.
    /// </summary>
    private static bool TryLoadPlugins(
        ProxyConfig config,
        ILoggerFactory loggerFactory,
        [NotNullWhen(true)] out PluginCatalog? catalog,
        [NotNullWhen(true)] out Interceptors? interceptors,
        Action<string>? report = null)
    {
        report ??= message => Console.Error.WriteLine($"pgproxy: {message}");
        catalog = null;
        interceptors = null;
        bool failed = false;
        PluginCatalog loaded;
        try
        {
            loaded = PluginCatalog.Load(config, loggerFactory);
        }
        catch (PluginLoadException e)
        {
            report(e.Message);
            return false;
        }

        var resolved = new Interceptors();
        foreach (InstanceConfig instance in config.Instances)
        {
            foreach (InterceptorReference reference in instance.Intercept.Queries)
            {
                failed |= !TryResolve(instance, "queries", reference, loaded.ResolveQueryInterceptor);
            }

            foreach (InterceptorReference reference in instance.Intercept.Connects)
            {
                failed |= !TryResolve(instance, "connects", reference, loaded.ResolveStartupInterceptor);
            }

            foreach (InterceptorReference reference in instance.Intercept.Responses)
            {
                failed |= !TryResolve(instance, "responses", reference, loaded.ResolveResponseInterceptor);
            }
        }

        if (failed)
        {
            loaded.Dispose();
            return false;
        }

        catalog = loaded;
        interceptors = resolved;
        return true;

        bool TryResolve(InstanceConfig instance, string kind, InterceptorReference reference, Func<InterceptorReference, object> resolve)
        {
            try
            {
                resolved.Add(instance, kind, reference, resolve(reference));
                return true;
            }
            catch (PluginLoadException e)
            {
                report(e.Message);
                return false;
            }
        }
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

    /// <summary>The interceptors resolved for each instance, for <c>check</c> to print.</summary>
    private sealed class Interceptors
    {
        private readonly List<(InstanceConfig Instance, string Kind, InterceptorReference Reference, object Interceptor)> resolved = [];

        public void Add(InstanceConfig instance, string kind, InterceptorReference reference, object interceptor) =>
            resolved.Add((instance, kind, reference, interceptor));

        public IEnumerable<(string Kind, InterceptorReference Reference, object Interceptor)> Of(InstanceConfig instance) =>
            resolved.Where(entry => ReferenceEquals(entry.Instance, instance)).Select(entry => (entry.Kind, entry.Reference, entry.Interceptor));

        /// <summary>The engine's frozen view of one instance's interceptors, in configuration order.</summary>
        public InstanceInterceptors For(InstanceConfig instance, ProxySettings settings) => new(
            Named<IQueryInterceptor>(instance, "queries"),
            Named<IStartupInterceptor>(instance, "connects"),
            Named<IResponseInterceptor>(instance, "responses"),
            settings.PluginTimeout,
            settings.PluginFailure);

        /// <summary>The interceptors of one kind, named <c>plugin.function</c>, with the keys their entries set.</summary>
        private IEnumerable<NamedInterceptor<T>> Named<T>(InstanceConfig instance, string kind)
            where T : class =>
            Of(instance).Where(e => e.Kind == kind).Select(e => new NamedInterceptor<T>($"{e.Reference.Plugin}.{e.Reference.Function}", (T)e.Interceptor)
            {
                OnError = e.Reference.OnError,
                Timeout = e.Reference.Timeout,
            });
    }
}
