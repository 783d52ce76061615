using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;

namespace PgProxy.Core.Hosting;

/// <summary>Where the configuration owner gets each configuration, and what it builds from it besides the engine's own parts.</summary>
public sealed class ConfigurationSource
{
    public ConfigurationSource(ProxyConfig initial)
    {
        ArgumentNullException.ThrowIfNull(initial);
        Initial = initial;
    }

    /// <summary>The configuration to start with (already read, so the host could set up its logging from it).</summary>
    public ProxyConfig Initial { get; }

    /// <summary>
    /// Reads the configuration again for a reload (the host reads its file); a <see cref="ConfigException"/> fails the
    /// reload with its errors. Null: a reload builds <see cref="Initial"/> again, reading its TLS files and plugins afresh.
    /// </summary>
    public Func<ProxyConfig>? Reload { get; init; }

    /// <summary>Builds each configuration's interceptor pipelines; by default from its plugins.</summary>
    public InterceptorPipelineBuilder Interceptors { get; init; } = InterceptorPipelines.Load;

    /// <summary>Parts outside the engine a reload also reconfigures (the host's logging), checked before and applied with the swap.</summary>
    public IReadOnlyList<IReloadableSettings> Reloadables { get; init; } = [];
}

/// <summary>A part of the process outside the engine that a reload also reconfigures, such as the host's logging.</summary>
public interface IReloadableSettings
{
    /// <summary>
    /// The problems that would keep <paramref name="config"/> from applying, one line each naming the key; empty when it
    /// can. Changes nothing that runs.
    /// </summary>
    IReadOnlyList<string> Check(ProxyConfig config);

    /// <summary>Applies <paramref name="config"/>; called only once every part of the reload has been checked and built.</summary>
    ValueTask ApplyAsync(ProxyConfig config, CancellationToken cancellationToken);
}
