using Microsoft.Extensions.Logging;
using PgProxy.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Plugins;

namespace PgProxy.Core.Interception;

/// <summary>One resolved interceptor entry: its kind (<c>queries</c>, <c>connects</c>, <c>responses</c>), the entry, and what it resolved to.</summary>
public sealed record ResolvedInterceptor(string Kind, InterceptorReference Reference, object Interceptor);

/// <summary>
/// Builds the interceptor pipelines of a configuration, or adds one line per problem to <c>errors</c> and returns null.
/// </summary>
public delegate InterceptorPipelines? InterceptorPipelineBuilder(ProxyConfig config, ILoggerFactory loggerFactory, ICollection<string> errors);

/// <summary>
/// The interceptor pipelines of every instance of one configuration, and the plugins their code lives in. Part of a
/// configuration snapshot; disposing it unloads the plugins once no session holds their interceptors any more.
/// </summary>
public sealed class InterceptorPipelines : IDisposable
{
    private readonly Func<InstanceConfig, ProxySettings, InstanceInterceptors> build;
    private readonly Dictionary<string, List<ResolvedInterceptor>> resolved;
    private readonly PluginCatalog? catalog;
    private readonly IReadOnlyList<LoadedPlugin> given;

    private InterceptorPipelines(
        Func<InstanceConfig, ProxySettings, InstanceInterceptors> build, Dictionary<string, List<ResolvedInterceptor>> resolved, PluginCatalog? catalog, IReadOnlyList<LoadedPlugin>? given = null)
    {
        this.build = build;
        this.resolved = resolved;
        this.catalog = catalog;
        this.given = given ?? [];
    }

    /// <summary>No interceptor anywhere.</summary>
    public static InterceptorPipelines None { get; } = Fixed(_ => InstanceInterceptors.None);

    /// <summary>The plugins loaded, in the configuration's order; empty when the pipelines were not built from plugins.</summary>
    public IReadOnlyList<LoadedPlugin> Plugins => catalog?.Plugins ?? given;

    /// <summary>Pipelines given by the embedding code (a test, a library user) rather than by plugins.</summary>
    public static InterceptorPipelines Fixed(Func<InstanceConfig, InstanceInterceptors> interceptors)
    {
        ArgumentNullException.ThrowIfNull(interceptors);
        return new InterceptorPipelines((instance, _) => interceptors(instance), [], null);
    }

    /// <summary>Fixed pipelines that report <paramref name="plugins"/> as loaded, for what reads <see cref="Plugins"/> without compiling one.</summary>
    internal static InterceptorPipelines Fixed(Func<InstanceConfig, InstanceInterceptors> interceptors, IReadOnlyList<LoadedPlugin> plugins) =>
        new((instance, _) => interceptors(instance), [], null, plugins);

    /// <summary>
    /// Loads the configuration's plugins and resolves every query, start-up and response interceptor entry, so a
    /// missing or mistyped function is reported with its line before anything uses it. Every failing entry is
    /// reported, not just the first; on any failure nothing stays loaded and null is returned.
    /// </summary>
    public static InterceptorPipelines? Load(ProxyConfig config, ILoggerFactory loggerFactory, ICollection<string> errors)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        ArgumentNullException.ThrowIfNull(errors);
        PluginCatalog catalog;
        try
        {
            catalog = PluginCatalog.Load(config, loggerFactory);
        }
        catch (PluginLoadException e)
        {
            errors.Add(e.Message);
            return null;
        }

        bool failed = false;
        var resolved = new Dictionary<string, List<ResolvedInterceptor>>(StringComparer.Ordinal);
        foreach (InstanceConfig instance in config.Instances)
        {
            var entries = new List<ResolvedInterceptor>();
            resolved[instance.Listen.Name] = entries;
            foreach (InterceptorReference reference in instance.Intercept.Queries)
            {
                failed |= !TryResolve(entries, "queries", reference, catalog.ResolveQueryInterceptor);
            }

            foreach (InterceptorReference reference in instance.Intercept.Connects)
            {
                failed |= !TryResolve(entries, "connects", reference, catalog.ResolveStartupInterceptor);
            }

            foreach (InterceptorReference reference in instance.Intercept.Responses)
            {
                failed |= !TryResolve(entries, "responses", reference, catalog.ResolveResponseInterceptor);
            }
        }

        if (failed)
        {
            catalog.Dispose();
            return null;
        }

        return new InterceptorPipelines((instance, settings) => Frozen(resolved, instance, settings), resolved, catalog);

        bool TryResolve(List<ResolvedInterceptor> entries, string kind, InterceptorReference reference, Func<InterceptorReference, object> resolve)
        {
            try
            {
                entries.Add(new ResolvedInterceptor(kind, reference, resolve(reference)));
                return true;
            }
            catch (PluginLoadException e)
            {
                errors.Add(e.Message);
                return false;
            }
        }
    }

    /// <summary>The entries resolved for an instance, in configuration order (empty for fixed pipelines).</summary>
    public IReadOnlyList<ResolvedInterceptor> Of(InstanceConfig instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        return resolved.TryGetValue(instance.Listen.Name, out List<ResolvedInterceptor>? entries) ? entries : [];
    }

    /// <summary>The engine's frozen view of one instance's interceptors, with the settings' timeout and failure policy.</summary>
    public InstanceInterceptors For(InstanceConfig instance, ProxySettings settings)
    {
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(settings);
        return build(instance, settings);
    }

    /// <summary>Unloads the plugins; sessions still holding their interceptors keep them alive until they end.</summary>
    public void Dispose() => catalog?.Dispose();

    private static InstanceInterceptors Frozen(Dictionary<string, List<ResolvedInterceptor>> resolved, InstanceConfig instance, ProxySettings settings)
    {
        List<ResolvedInterceptor> entries = resolved.TryGetValue(instance.Listen.Name, out List<ResolvedInterceptor>? found) ? found : [];
        return new InstanceInterceptors(
            Named<IQueryInterceptor>(entries, "queries"),
            Named<IStartupInterceptor>(entries, "connects"),
            Named<IResponseInterceptor>(entries, "responses"),
            settings.PluginTimeout,
            settings.PluginFailure)
        {
            MaxInterceptedSize = instance.Limits.MaxInterceptedSize,
        };
    }

    /// <summary>The interceptors of one kind, named <c>plugin.function</c>, with the keys their entries set.</summary>
    private static IEnumerable<NamedInterceptor<T>> Named<T>(List<ResolvedInterceptor> entries, string kind)
        where T : class =>
        entries.Where(e => e.Kind == kind).Select(e => new NamedInterceptor<T>($"{e.Reference.Plugin}.{e.Reference.Function}", (T)e.Interceptor)
        {
            OnError = e.Reference.OnError,
            Timeout = e.Reference.Timeout,
            Plugin = e.Reference.Plugin,
        });
}
