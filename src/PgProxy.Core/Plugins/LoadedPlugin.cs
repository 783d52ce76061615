namespace PgProxy.Core.Plugins;

/// <summary>How a plugin was written.</summary>
public enum PluginKind
{
    /// <summary><c>PLUGINDIR/NAME.cs</c>, compiled in memory.</summary>
    SourceFile,

    /// <summary><c>PLUGINDIR/NAME/*.cs</c> (recursively, without bin/ and obj/), compiled in memory.</summary>
    SourceDirectory,

    /// <summary><c>PLUGINDIR/NAME/NAME.dll</c>, built beforehand.</summary>
    Assembly,
}

/// <summary>A plugin the catalog loaded: its name in the configuration, how it was written, and where it was found.</summary>
/// <param name="Name">The name in the top-level <c>plugins</c> list.</param>
/// <param name="Kind">Source file, source folder or compiled assembly.</param>
/// <param name="Path">The file or folder it was loaded from.</param>
public sealed record LoadedPlugin(string Name, PluginKind Kind, string Path);
