using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;
using PgProxy.Core.Sessions;

namespace PgProxy.Core.Hosting;

/// <summary>
/// One running configuration, built whole: the validated file, each instance's TLS material and interceptor
/// pipelines, and the session environment built from them. Immutable; a reload builds the next one and swaps it in
/// at once, so a session that starts sees all of one snapshot and none of another.
/// </summary>
public sealed class ConfigSnapshot
{
    internal ConfigSnapshot(long generation, ProxyConfig config, InterceptorPipelines pipelines, IReadOnlyDictionary<string, SessionEnvironment> environments, SessionEnvironment? consoleEnvironment = null)
    {
        Generation = generation;
        Config = config;
        Pipelines = pipelines;
        Environments = environments;
        ConsoleEnvironment = consoleEnvironment;
    }

    /// <summary>1 for the configuration PgProxy started with, one more for each reload that applied.</summary>
    public long Generation { get; }

    public ProxyConfig Config { get; }

    /// <summary>The interceptors of every instance and the plugins they come from.</summary>
    public InterceptorPipelines Pipelines { get; }

    /// <summary>What new sessions of each instance get, by instance name.</summary>
    internal IReadOnlyDictionary<string, SessionEnvironment> Environments { get; }

    /// <summary>What sessions of the console's own listener (<c>admin.listen</c>) get; null when it has none.</summary>
    internal SessionEnvironment? ConsoleEnvironment { get; }
}
