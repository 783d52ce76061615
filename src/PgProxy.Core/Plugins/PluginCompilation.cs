namespace PgProxy.Core.Plugins;

/// <summary>
/// Where source plugins are compiled. By default in this process, with Roslyn. A host can compile them in a child
/// process instead (the <c>pgproxy</c> host does): Roslyn's code and heap, about 40 MB that stay resident after a
/// compile even once released, then never enter the long-running process, which loads the compiled image as it loads
/// one from the plugin cache. Kept apart from <see cref="PluginCompiler"/>, whose static fields are Roslyn's types:
/// reading this class loads none of them.
/// </summary>
public static class PluginCompilation
{
    /// <summary>
    /// Compiles a plugin elsewhere: the assembly name, the source files, the plugin as errors name it; returns the
    /// image and its PDB, or null when it cannot run (then the plugin is compiled in this process). Compile errors are
    /// a <see cref="PluginLoadException"/> with the message an in-process compile gives.
    /// </summary>
    public static Func<string, IReadOnlyList<string>, string, (byte[] Image, byte[] Pdb)?>? OutOfProcess { get; set; }

    /// <summary>Compiles in this process, whatever <see cref="OutOfProcess"/> says: what the child process runs.</summary>
    /// <exception cref="PluginLoadException">The sources do not compile, or cannot be read.</exception>
    public static (byte[] Image, byte[] Pdb) CompileHere(string assemblyName, IReadOnlyList<string> files, string describedAs)
    {
        using var compiler = new PluginCompiler();
        return compiler.CompileInProcess(assemblyName, files, describedAs);
    }
}
