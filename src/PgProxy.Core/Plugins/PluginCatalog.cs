using System.Reflection;
using Microsoft.Extensions.Logging;
using PgProxy.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;

namespace PgProxy.Core.Plugins;

/// <summary>
/// The plugins of one configuration, loaded: found in the plugin directory (or the built-in one), compiled when they are
/// source, each in its own collectible load context. Resolves <c>{plugin, function}</c> entries into interceptors.
/// Disposing unloads every plugin once nothing else holds its interceptors.
/// </summary>
public sealed class PluginCatalog : IDisposable
{
    private readonly Dictionary<string, Entry> entries;
    private bool disposed;

    private PluginCatalog(List<Entry> loaded)
    {
        entries = loaded.ToDictionary(entry => entry.Plugin.Name, StringComparer.Ordinal);
        Plugins = [.. loaded.Select(entry => entry.Plugin)];
    }

    /// <summary>The plugins, in the order of the configuration's <c>plugins</c> list.</summary>
    public IReadOnlyList<LoadedPlugin> Plugins { get; }

    /// <summary>Where PgProxy looks for a plugin after the configured plugin directory: <c>plugins</c> beside the program.</summary>
    public static string BuiltInDirectory { get; } = FindBuiltInDirectory();

    /// <summary>Loads every plugin named in <c>config.Plugins</c>.</summary>
    /// <exception cref="PluginLoadException">A plugin is missing, does not compile, or cannot be loaded.</exception>
    public static PluginCatalog Load(ProxyConfig config, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        ILogger logger = loggerFactory.CreateLogger("PgProxy.Plugins");
        var loaded = new List<Entry>();
        // Disposed once every plugin is loaded: what compiling took is given back (see PluginCompiler).
        using var compiler = new PluginCompiler();
        CompiledPluginCache cache = CompiledPluginCache.For(config, logger);
        try
        {
            foreach (PluginReference reference in config.Plugins)
            {
                if (loaded.Exists(entry => string.Equals(entry.Plugin.Name, reference.Name, StringComparison.Ordinal)))
                {
                    continue;
                }

                LoadedPlugin plugin = Find(reference, config.Settings.PluginDirectory);
                long started = System.Diagnostics.Stopwatch.GetTimestamp();
                loaded.Add(LoadOne(reference, plugin, compiler, cache));
                double milliseconds = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                Log.PluginLoaded(logger, plugin.Name, plugin.Kind, plugin.Path, milliseconds);
            }
        }
        catch
        {
            foreach (Entry entry in loaded)
            {
                entry.Context.Unload();
            }

            throw;
        }

        return new PluginCatalog(loaded);
    }

    /// <summary>Resolves a <c>queries</c> entry into an interceptor (a new instance for a class-based one).</summary>
    /// <exception cref="PluginLoadException">The plugin has no such function or class, it has the wrong signature, or the name is ambiguous.</exception>
    public IQueryInterceptor ResolveQueryInterceptor(InterceptorReference reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        Entry entry = EntryFor(reference);
        return Resolve<IQueryInterceptor>(
            entry,
            reference,
            InterceptorShapes.QuerySignatures,
            method => InterceptorShapes.ForQuery(method) is { } intercept ? new QueryInterceptorAdapter(Describe(method), intercept) : null,
            (type, instance) => new QueryInterceptorAdapter(type.FullName ?? type.Name, instance.InterceptQueryAsync));
    }

    /// <summary>Resolves a <c>connects</c> entry into an interceptor (a new instance for a class-based one).</summary>
    /// <exception cref="PluginLoadException">The plugin has no such function or class, it has the wrong signature, or the name is ambiguous.</exception>
    public IStartupInterceptor ResolveStartupInterceptor(InterceptorReference reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        Entry entry = EntryFor(reference);
        return Resolve<IStartupInterceptor>(
            entry,
            reference,
            InterceptorShapes.StartupSignatures,
            method => InterceptorShapes.ForStartup(method) is { } intercept ? new StartupInterceptorAdapter(Describe(method), intercept) : null,
            (type, instance) => new StartupInterceptorAdapter(type.FullName ?? type.Name, instance.InterceptStartupAsync));
    }

    /// <summary>Resolves a <c>responses</c> entry into an interceptor (a new instance for a class-based one).</summary>
    /// <exception cref="PluginLoadException">The plugin has no such function or class, it has the wrong signature, or the name is ambiguous.</exception>
    public IResponseInterceptor ResolveResponseInterceptor(InterceptorReference reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        Entry entry = EntryFor(reference);
        return Resolve<IResponseInterceptor>(
            entry,
            reference,
            InterceptorShapes.ResponseSignatures,
            method => InterceptorShapes.ForResponse(method) is { } intercept
                ? new ResponseInterceptorAdapter(Describe(method), method.GetCustomAttribute<ResponseKindsAttribute>()?.Kinds ?? ResponseKinds.All, intercept)
                : null,
            (type, instance) => new ResponseInterceptorAdapter(type.FullName ?? type.Name, instance.Kinds, instance.InterceptResponseAsync));
    }

    /// <summary>Unloads every plugin; interceptors resolved earlier keep their plugin alive until they are dropped.</summary>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        foreach (Entry entry in entries.Values)
        {
            entry.Context.Unload();
        }

        entries.Clear();
    }

    /// <summary>
    /// <c>plugins</c> beside the assemblies, or else beside the program file: a single-file PgProxy that unpacks itself
    /// (artifacts/linux-x64/pgproxy, /usr/lib/pgproxy/pgproxy) runs its assemblies from the extraction folder, while
    /// its plugins sit beside the file. <see cref="Environment.ProcessPath"/> is the resolved path, so a link such as
    /// /usr/bin/pgproxy finds /usr/lib/pgproxy/plugins.
    /// </summary>
    private static string FindBuiltInDirectory()
    {
        string besideAssemblies = Path.Combine(AppContext.BaseDirectory, "plugins");
        if (Directory.Exists(besideAssemblies) || Environment.ProcessPath is not { } program
            || string.Equals(Path.GetFileNameWithoutExtension(program), "dotnet", StringComparison.Ordinal))
        {
            return besideAssemblies;
        }

        string besideProgram = Path.Combine(Path.GetDirectoryName(program)!, "plugins");
        return Directory.Exists(besideProgram) ? besideProgram : besideAssemblies;
    }

    /// <summary><c>rewrite_query</c> → <c>RewriteQuery</c>: the C# name of a seed-style (Python-style) function name.</summary>
    internal static string PascalCase(string name) =>
        string.Concat(name.Split(['_', '-'], StringSplitOptions.RemoveEmptyEntries)
            .Select(part => char.ToUpperInvariant(part[0]) + part[1..]));

    private static LoadedPlugin Find(PluginReference reference, string pluginDirectory)
    {
        var directories = new List<string> { pluginDirectory };
        string builtIn = BuiltInDirectory;
        if (!string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(builtIn)), Path.TrimEndingDirectorySeparator(Path.GetFullPath(pluginDirectory)), StringComparison.Ordinal))
        {
            directories.Add(builtIn);
        }

        var lookedFor = new List<string>();
        foreach (string directory in directories)
        {
            string name = reference.Name;
            string file = Path.Combine(directory, name + ".cs");
            string folder = Path.Combine(directory, name);
            string dll = Path.Combine(folder, name + ".dll");
            if (File.Exists(file))
            {
                return new LoadedPlugin(name, PluginKind.SourceFile, file);
            }

            if (Directory.Exists(folder) && SourceFiles(folder).Count > 0)
            {
                return new LoadedPlugin(name, PluginKind.SourceDirectory, folder);
            }

            if (File.Exists(dll))
            {
                return new LoadedPlugin(name, PluginKind.Assembly, dll);
            }

            lookedFor.AddRange([file, Path.Combine(folder, "*.cs"), dll]);
        }

        throw new PluginLoadException($"plugin \"{reference.Name}\" (config line {reference.Line}) not found: looked for {string.Join(", ", lookedFor)}");
    }

    /// <summary>Every .cs file under <paramref name="folder"/>, recursively, without build output (bin/, obj/), in a stable order.</summary>
    private static List<string> SourceFiles(string folder) =>
        [.. Directory.EnumerateFiles(folder, "*.cs", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true })
            .Where(file => !Path.GetRelativePath(folder, file).Split(Path.DirectorySeparatorChar).SkipLast(1)
                .Any(part => part.Equals("bin", StringComparison.OrdinalIgnoreCase) || part.Equals("obj", StringComparison.OrdinalIgnoreCase)))
            .Order(StringComparer.Ordinal)];

    private static Entry LoadOne(PluginReference reference, LoadedPlugin plugin, PluginCompiler compiler, CompiledPluginCache cache)
    {
        string describedAs = $"plugin \"{plugin.Name}\" (config line {reference.Line})";
        PluginLoadContext context;
        Assembly assembly;
        if (plugin.Kind == PluginKind.Assembly)
        {
            context = new PluginLoadContext(plugin.Name, plugin.Path);
            try
            {
                assembly = context.LoadFromAssemblyPath(plugin.Path);
            }
            catch (Exception e) when (e is BadImageFormatException or FileLoadException or IOException)
            {
                context.Unload();
                throw new PluginLoadException($"{describedAs} cannot be loaded from {plugin.Path}: {e.Message}", e);
            }
        }
        else
        {
            IReadOnlyList<string> files = plugin.Kind == PluginKind.SourceFile ? [plugin.Path] : SourceFiles(plugin.Path);
            (byte[] image, byte[] pdb) = cache.GetOrCompile(compiler, plugin.Name, files, describedAs);
            context = new PluginLoadContext(plugin.Name, mainAssemblyPath: null);
            using var imageStream = new MemoryStream(image);
            using var pdbStream = new MemoryStream(pdb);
            assembly = context.LoadFromStream(imageStream, pdbStream);
        }

        Entry entry;
        try
        {
            entry = new Entry(plugin, reference, context, assembly.GetExportedTypes());
        }
        catch (Exception e) when (e is ReflectionTypeLoadException or FileNotFoundException or FileLoadException or TypeLoadException)
        {
            context.Unload();
            throw new PluginLoadException($"{describedAs}: its types cannot be loaded (a missing dependency?): {e.Message}", e);
        }

        try
        {
            RequireSqlParserIfUsed(assembly, describedAs);
            Configure(entry, describedAs);
        }
        catch
        {
            context.Unload();
            throw;
        }

        return entry;
    }

    /// <summary>A plugin built on PgProxy.Sql cannot work without libpg_query: say so at load, naming the package, not at its first query.</summary>
    private static void RequireSqlParserIfUsed(Assembly assembly, string describedAs)
    {
        if (assembly.GetReferencedAssemblies().Any(name => string.Equals(name.Name, typeof(Sql.PostgresParser).Assembly.GetName().Name, StringComparison.Ordinal))
            && Sql.PostgresParser.AvailabilityProblem is { } problem)
        {
            throw new PluginLoadException($"{describedAs} needs the PostgreSQL parser: {problem}");
        }
    }

    /// <summary>
    /// Hands the plugin its settings: a public static <c>Configure(IReadOnlyDictionary&lt;string, string&gt;)</c> is called
    /// once at load (with no settings when the configuration gives none); settings for a plugin without one are an error.
    /// </summary>
    private static void Configure(Entry entry, string describedAs)
    {
        var configure = entry.Types
            .Select(type => type.GetMethod("Configure", BindingFlags.Public | BindingFlags.Static, [typeof(IReadOnlyDictionary<string, string>)]))
            .Where(method => method is not null && method.ReturnType == typeof(void))
            .ToList();
        if (configure.Count == 0)
        {
            if (entry.Reference.Settings.Count > 0)
            {
                throw new PluginLoadException($"{describedAs} takes no settings: it has no public static Configure(IReadOnlyDictionary<string, string>) method");
            }

            return;
        }

        if (configure.Count > 1)
        {
            throw new PluginLoadException($"{describedAs}: more than one public static Configure method: {string.Join(" and ", configure.Select(method => Describe(method!)))}");
        }

        try
        {
            configure[0]!.Invoke(null, [entry.Reference.Settings]);
        }
        catch (TargetInvocationException e)
        {
            throw new PluginLoadException($"{describedAs} settings: {e.InnerException?.Message}", e.InnerException ?? e);
        }
    }

    private Entry EntryFor(InterceptorReference reference)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return entries.TryGetValue(reference.Plugin, out Entry? entry)
            ? entry
            : throw new PluginLoadException($"config line {reference.Line}: plugin \"{reference.Plugin}\" is not loaded: it is not in the top-level plugins list");
    }

    /// <summary>
    /// Public static methods named F or PascalCase(F) with an accepted signature first, then public classes of that name
    /// implementing <typeparamref name="TInterceptor"/>. A match on the exact name beats one on the PascalCase name.
    /// </summary>
    private static TInterceptor Resolve<TInterceptor>(
        Entry entry,
        InterceptorReference reference,
        string signatures,
        Func<MethodInfo, TInterceptor?> fromMethod,
        Func<Type, TInterceptor, TInterceptor> fromInstance)
        where TInterceptor : class
    {
        string exact = reference.Function;
        string pascal = PascalCase(exact);
        string where = $"config line {reference.Line}: plugin \"{reference.Plugin}\", function \"{reference.Function}\"";
        bool NameMatches(string name) => string.Equals(name, exact, StringComparison.Ordinal) || string.Equals(name, pascal, StringComparison.Ordinal);

        var namedMethods = entry.Types
            .SelectMany(type => type.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Where(method => NameMatches(method.Name))
            .ToList();
        var methods = namedMethods
            .Select(method => (Method: method, Interceptor: fromMethod(method)))
            .Where(match => match.Interceptor is not null)
            .ToList();
        if (methods.Count > 1 && methods.Any(match => match.Method.Name == exact) && methods.Any(match => match.Method.Name != exact))
        {
            methods.RemoveAll(match => match.Method.Name != exact);
        }

        if (methods.Count > 1)
        {
            throw new PluginLoadException($"{where} is ambiguous: {string.Join(" and ", methods.Select(match => Describe(match.Method)))}");
        }

        if (methods.Count == 1)
        {
            return methods[0].Interceptor!;
        }

        var namedClasses = entry.Types.Where(type => type.IsClass && NameMatches(type.Name)).ToList();
        var classes = namedClasses
            .Where(type => !type.IsAbstract && !type.ContainsGenericParameters && typeof(TInterceptor).IsAssignableFrom(type) && type.GetConstructor(Type.EmptyTypes) is not null)
            .ToList();
        if (classes.Count > 1 && classes.Any(type => type.Name == exact) && classes.Any(type => type.Name != exact))
        {
            classes.RemoveAll(type => type.Name != exact);
        }

        if (classes.Count > 1)
        {
            throw new PluginLoadException($"{where} is ambiguous: classes {string.Join(" and ", classes.Select(type => type.FullName))}");
        }

        if (classes.Count == 1)
        {
            Type type = classes[0];
            object instance;
            try
            {
                instance = Activator.CreateInstance(type)!;
            }
            catch (TargetInvocationException e)
            {
                throw new PluginLoadException($"{where}: the constructor of {type.FullName} failed: {e.InnerException?.Message}", e.InnerException ?? e);
            }

            return fromInstance(type, (TInterceptor)instance);
        }

        string names = exact == pascal ? exact : $"{exact} or {pascal}";
        if (namedMethods.Count > 0)
        {
            throw new PluginLoadException(
                $"{where}: {string.Join(" and ", namedMethods.Select(Describe))} does not have a signature PgProxy accepts here; use one of:{Environment.NewLine}{signatures}");
        }

        if (namedClasses.Count > 0)
        {
            throw new PluginLoadException(
                $"{where}: class {string.Join(" and ", namedClasses.Select(type => type.FullName))} must be public, not abstract, implement {typeof(TInterceptor).Name} and have a public parameterless constructor");
        }

        throw new PluginLoadException(
            $"{where} not found: no public static method {names} and no public class {names} implementing {typeof(TInterceptor).Name} in {entry.Plugin.Path}");
    }

    private static string Describe(MethodInfo method) =>
        $"{method.DeclaringType?.FullName}.{method.Name}({string.Join(", ", method.GetParameters().Select(parameter => parameter.ParameterType.Name))})";

    /// <summary>One loaded plugin: its load context and the public types an interceptor entry may name.</summary>
    private sealed record Entry(LoadedPlugin Plugin, PluginReference Reference, PluginLoadContext Context, Type[] Types);
}
