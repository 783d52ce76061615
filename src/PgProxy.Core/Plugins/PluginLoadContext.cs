using System.Reflection;
using System.Runtime.Loader;

namespace PgProxy.Core.Plugins;

/// <summary>
/// The collectible load context of one plugin. The plugin API assemblies (PgProxy.Abstractions,
/// Microsoft.Extensions.Logging.Abstractions) always come from the default context, so that the interfaces a plugin
/// implements are the ones the engine calls; so does PgProxy.Sql (with Google.Protobuf), so that every plugin shares one
/// copy of the parser and its native library. PgProxy.Protocol, the wire codec, is the engine's and not part of the
/// plugin API. A compiled plugin's other dependencies come from its own folder.
/// </summary>
internal sealed class PluginLoadContext : AssemblyLoadContext
{
    private static readonly HashSet<string> SharedAssemblies = new(StringComparer.OrdinalIgnoreCase)
    {
        "PgProxy.Abstractions",
        "Microsoft.Extensions.Logging.Abstractions",
        "PgProxy.Sql",
        "Google.Protobuf",
    };

    private readonly AssemblyDependencyResolver? resolver;

    public PluginLoadContext(string pluginName, string? mainAssemblyPath)
        : base($"pgproxy-plugin:{pluginName}", isCollectible: true)
    {
        if (mainAssemblyPath is not null)
        {
            resolver = new AssemblyDependencyResolver(mainAssemblyPath);
        }
    }

    /// <summary>True for the assemblies every plugin shares with the engine.</summary>
    public static bool IsShared(string? assemblyName) => assemblyName is not null && SharedAssemblies.Contains(assemblyName);

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        if (IsShared(assemblyName.Name))
        {
            return null;
        }

        // A private dependency of a compiled plugin; anything else (the framework) comes from the default context.
        string? path = resolver?.ResolveAssemblyToPath(assemblyName);
        return path is null ? null : LoadFromAssemblyPath(path);
    }

    protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
    {
        string? path = resolver?.ResolveUnmanagedDllToPath(unmanagedDllName);
        return path is null ? IntPtr.Zero : LoadUnmanagedDllFromPath(path);
    }
}
