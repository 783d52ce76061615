using System.Collections.Immutable;
using System.Globalization;
using System.Runtime;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Emit;
using Microsoft.Extensions.Logging;
using PgProxy.Abstractions;

namespace PgProxy.Core.Plugins;

/// <summary>
/// Compiles source plugins in memory with Roslyn, as a project with implicit usings and nullable enabled would. One
/// compiler serves one load of the plugins (start-up, or a reload): the framework's metadata it reads for the first
/// plugin serves the others, and <see cref="Dispose"/> releases it, so the memory a compile takes is not kept for the
/// life of the process (a small source plugin kept about 120 MB resident when the metadata stayed).
/// </summary>
internal sealed class PluginCompiler : IDisposable
{
    /// <summary>At most this many compiler errors are quoted; the rest are counted.</summary>
    private const int MaxReportedErrors = 20;

    private const string GlobalUsingsPath = "PgProxy.GlobalUsings.g.cs";

    private const string GlobalUsings = """
        global using global::System;
        global using global::System.Collections.Generic;
        global using global::System.Linq;
        global using global::System.Text;
        global using global::System.Threading;
        global using global::System.Threading.Tasks;
        global using global::PgProxy.Abstractions;
        """;

    private static readonly CSharpParseOptions ParseOptions = CSharpParseOptions.Default.WithLanguageVersion(LanguageVersion.Latest);

    private static readonly CSharpCompilationOptions CompilationOptions = new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary)
        .WithOptimizationLevel(OptimizationLevel.Release)
        .WithNullableContextOptions(NullableContextOptions.Enable)
        .WithConcurrentBuild(false);

    // The framework's metadata, read at the first compile: a FrameworkMetadata, typed object so that a load whose
    // plugins all come from the cache never loads Roslyn's assemblies at all.
    private object? metadata;

    /// <summary>True once something was compiled: there is memory for <see cref="Dispose"/> to give back.</summary>
    public bool Compiled { get; private set; }

    /// <summary>Compiles <paramref name="files"/> into an assembly named <paramref name="assemblyName"/>; returns the image and its PDB.</summary>
    /// <exception cref="PluginLoadException">The sources do not compile; the message lists each error with file, line and code.</exception>
    public (byte[] Image, byte[] Pdb) Compile(string assemblyName, IReadOnlyList<string> files, string describedAs)
    {
        if (PluginCompilation.OutOfProcess is { } compileElsewhere && compileElsewhere(assemblyName, files, describedAs) is { } compiled)
        {
            return compiled;
        }

        return CompileInProcess(assemblyName, files, describedAs);
    }

    /// <summary>Compiles in this process, with Roslyn.</summary>
    internal (byte[] Image, byte[] Pdb) CompileInProcess(string assemblyName, IReadOnlyList<string> files, string describedAs)
    {
        Compiled = true;
        return CompileWithRoslyn(assemblyName, files, describedAs);
    }

    /// <summary>
    /// Unmaps the framework metadata, then collects with decommit, so that the compiler's garbage is given back to the
    /// system rather than kept in the heap for the next compile, which may never come. Roslyn's own code stays loaded.
    /// </summary>
    public void Dispose()
    {
        if (metadata is null && !Compiled)
        {
            return;
        }

        (metadata as FrameworkMetadata)?.Dispose();
        metadata = null;
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    private (byte[] Image, byte[] Pdb) CompileWithRoslyn(string assemblyName, IReadOnlyList<string> files, string describedAs)
    {
        ImmutableArray<MetadataReference> references = ((FrameworkMetadata)(metadata ??= ReadMetadata())).References;
        var trees = new List<SyntaxTree>(files.Count + 1)
        {
            CSharpSyntaxTree.ParseText(SourceTextFrom(GlobalUsings), ParseOptions, GlobalUsingsPath),
        };
        foreach (string file in files)
        {
            string text;
            try
            {
                text = File.ReadAllText(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new PluginLoadException($"{describedAs} cannot be read: {file}: {e.Message}", e);
            }

            trees.Add(CSharpSyntaxTree.ParseText(SourceTextFrom(text), ParseOptions, file));
        }

        var compilation = CSharpCompilation.Create(assemblyName, trees, references, CompilationOptions);
        using var image = new MemoryStream();
        using var pdb = new MemoryStream();
        EmitResult result = compilation.Emit(image, pdb, options: new EmitOptions(debugInformationFormat: DebugInformationFormat.PortablePdb));
        if (!result.Success)
        {
            throw new PluginLoadException(DescribeErrors(describedAs, result.Diagnostics));
        }

        return (image.ToArray(), pdb.ToArray());
    }

    private static Microsoft.CodeAnalysis.Text.SourceText SourceTextFrom(string text) =>
        Microsoft.CodeAnalysis.Text.SourceText.From(text, Encoding.UTF8);

    private static string DescribeErrors(string describedAs, ImmutableArray<Diagnostic> diagnostics)
    {
        var errors = diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        var message = new StringBuilder().Append(CultureInfo.InvariantCulture, $"{describedAs} failed to compile ({errors.Count} error{(errors.Count == 1 ? "" : "s")}):");
        foreach (Diagnostic error in errors.Take(MaxReportedErrors))
        {
            message.AppendLine().Append("  ").Append(Format(error));
        }

        if (errors.Count > MaxReportedErrors)
        {
            message.AppendLine().Append(CultureInfo.InvariantCulture, $"  and {errors.Count - MaxReportedErrors} more");
        }

        return message.ToString();
    }

    /// <summary><c>path(line,col): error CSxxxx: message</c>, as the C# compiler prints it.</summary>
    internal static string Format(Diagnostic diagnostic)
    {
        string message = diagnostic.GetMessage(CultureInfo.InvariantCulture);
        if (diagnostic.Location.IsInSource)
        {
            FileLinePositionSpan span = diagnostic.Location.GetLineSpan();
            return string.Create(CultureInfo.InvariantCulture, $"{span.Path}({span.StartLinePosition.Line + 1},{span.StartLinePosition.Character + 1}): error {diagnostic.Id}: {message}");
        }

        return $"error {diagnostic.Id}: {message}";
    }

    /// <summary>
    /// The .NET runtime's assemblies and the plugin API (<see cref="PluginApi"/>): nothing else of the host. The trusted
    /// platform assemblies also list everything PgProxy itself ships (PgProxy.Core, PgProxy.Protocol, YamlDotNet,
    /// Serilog, Roslyn...); a plugin that compiled against those would depend on PgProxy's internals, so only the ones in
    /// the runtime's own folder are kept.
    /// </summary>
    private static FrameworkMetadata ReadMetadata()
    {
        string runtimeDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var paths = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") is string trusted)
        {
            foreach (string path in trusted.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            {
                if (string.Equals(Path.GetDirectoryName(path), runtimeDirectory, StringComparison.Ordinal))
                {
                    paths.TryAdd(Path.GetFileNameWithoutExtension(path), path);
                }
            }
        }

        // The plugin API, wherever the host loaded it from.
        foreach (var assembly in PluginApi)
        {
            if (string.IsNullOrEmpty(assembly.Location))
            {
                throw new PluginLoadException($"source plugins cannot be compiled: {assembly.GetName().Name} has no file on disk (is PgProxy published as a single file?); use a compiled plugin instead");
            }

            paths[assembly.GetName().Name!] = assembly.Location;
        }

        var read = new FrameworkMetadata();
        try
        {
            foreach (string path in paths.Values.Order(StringComparer.Ordinal))
            {
                read.Add(AssemblyMetadata.CreateFromFile(path), path);
            }
        }
        catch
        {
            read.Dispose();
            throw;
        }

        return read;
    }

    /// <summary>
    /// What a source plugin compiles against besides the runtime: PgProxy.Abstractions, the logging abstractions its
    /// <see cref="ISessionContext.Logger"/> is typed with, and PgProxy.Sql with Google.Protobuf, in which its parse
    /// tree is typed. Not PgProxy.Protocol: the wire codec is the engine's, not part of the plugin contract.
    /// </summary>
    private static System.Reflection.Assembly[] PluginApi =>
        [typeof(IQueryInterceptor).Assembly, typeof(ILogger).Assembly, typeof(Sql.PostgresParser).Assembly, typeof(Google.Protobuf.IMessage).Assembly];

    /// <summary>The metadata of the assemblies a plugin compiles against, read once per compiler, unmapped on dispose.</summary>
    private sealed class FrameworkMetadata : IDisposable
    {
        private readonly List<AssemblyMetadata> assemblies = [];
        private ImmutableArray<MetadataReference>.Builder references = ImmutableArray.CreateBuilder<MetadataReference>();

        public ImmutableArray<MetadataReference> References => references.ToImmutable();

        public void Add(AssemblyMetadata assembly, string path)
        {
            assemblies.Add(assembly);
            references.Add(assembly.GetReference(filePath: path));
        }

        public void Dispose()
        {
            foreach (AssemblyMetadata assembly in assemblies)
            {
                assembly.Dispose();
            }

            assemblies.Clear();
            references = ImmutableArray.CreateBuilder<MetadataReference>();
        }
    }
}
