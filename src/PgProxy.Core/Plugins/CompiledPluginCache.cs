using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;

namespace PgProxy.Core.Plugins;

/// <summary>
/// Source plugins compiled earlier, kept on disk so that a restart or a reload with unchanged sources compiles nothing
/// (a compile costs seconds of CPU and, while it runs, about a hundred MB). An entry is named by the plugin and a
/// SHA-256 over PgProxy's version (with its commit), the runtime's version, and every source file's path and bytes:
/// any change to one of them is a new entry. The folder is <c>PGPROXY_PLUGIN_CACHE</c> when set (the Debian service
/// sets /var/cache/pgproxy/plugins; <c>off</c> turns the cache off), else <c>.pgproxy-plugin-cache</c> beside the
/// configuration file. It holds code PgProxy runs: only PgProxy's own user should be able to write it.
/// </summary>
internal sealed class CompiledPluginCache
{
    public const string DirectoryVariable = "PGPROXY_PLUGIN_CACHE";
    public const string DefaultFolderName = ".pgproxy-plugin-cache";

    private static readonly string Version =
        typeof(CompiledPluginCache).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(CompiledPluginCache).Assembly.GetName().Version?.ToString() ?? "unknown";

    private readonly ILogger logger;

    private CompiledPluginCache(string? directory, ILogger logger)
    {
        Directory = directory;
        this.logger = logger;
    }

    /// <summary>The cache folder; null when the cache is off.</summary>
    public string? Directory { get; }

    public static CompiledPluginCache For(ProxyConfig config, ILogger logger)
    {
        string? configured = Environment.GetEnvironmentVariable(DirectoryVariable);
        if (string.Equals(configured, "off", StringComparison.OrdinalIgnoreCase))
        {
            return new CompiledPluginCache(null, logger);
        }

        string directory = string.IsNullOrEmpty(configured)
            ? Path.Combine(config.BaseDirectory, DefaultFolderName)
            : Path.GetFullPath(configured, config.BaseDirectory);
        return new CompiledPluginCache(directory, logger);
    }

    /// <summary>The compiled plugin: from the cache when its sources are unchanged, else compiled with <paramref name="compiler"/> and stored.</summary>
    /// <exception cref="PluginLoadException">The sources do not compile, or cannot be read.</exception>
    public (byte[] Image, byte[] Pdb) GetOrCompile(PluginCompiler compiler, string name, IReadOnlyList<string> files, string describedAs)
    {
        string? key = Directory is null ? null : KeyOf(name, files);
        if (key is null)
        {
            return compiler.Compile(name, files, describedAs);
        }

        string image = Path.Combine(Directory!, $"{name}-{key}.dll");
        string pdb = Path.ChangeExtension(image, ".pdb");
        try
        {
            if (File.Exists(image) && File.Exists(pdb))
            {
                (byte[] Image, byte[] Pdb) cached = (File.ReadAllBytes(image), File.ReadAllBytes(pdb));
                Log.PluginFromCache(logger, name, image);
                return cached;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Unreadable: compiled again below, and written anew where it can be.
        }

        (byte[] Image, byte[] Pdb) compiled = compiler.Compile(name, files, describedAs);
        Store(name, image, pdb, compiled);
        return compiled;
    }

    private void Store(string name, string image, string pdb, (byte[] Image, byte[] Pdb) compiled)
    {
        try
        {
            System.IO.Directory.CreateDirectory(Directory!);
            // The entries of earlier sources of this plugin will not be asked for again.
            foreach (string old in System.IO.Directory.EnumerateFiles(Directory!, name + "-*"))
            {
                if (!string.Equals(Path.GetFileNameWithoutExtension(old), Path.GetFileNameWithoutExtension(image), StringComparison.Ordinal)
                    && Path.GetFileNameWithoutExtension(old).Length == name.Length + 1 + 32)
                {
                    File.Delete(old);
                }
            }

            // The .pdb first and each by rename: a reader that sees the .dll finds both whole, even across processes.
            WriteByRename(pdb, compiled.Pdb);
            WriteByRename(image, compiled.Image);
            Log.PluginCached(logger, name, image);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.PluginCacheUnwritable(logger, name, Directory!, e.Message);
        }
    }

    private static void WriteByRename(string path, byte[] bytes)
    {
        string temporary = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllBytes(temporary, bytes);
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>32 hex digits of SHA-256 over what the compiled plugin depends on; null when a source cannot be read (the compile reports it).</summary>
    private static string? KeyOf(string name, IReadOnlyList<string> files)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes($"pgproxy {Version}\n{RuntimeInformation.FrameworkDescription}\n{name}\n"));
        try
        {
            foreach (string file in files)
            {
                byte[] content = File.ReadAllBytes(file);
                hash.AppendData(Encoding.UTF8.GetBytes($"{file}\n{content.Length}\n"));
                hash.AppendData(content);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset())[..32];
    }
}
