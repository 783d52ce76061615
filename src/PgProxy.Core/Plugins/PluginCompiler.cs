using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Emit;
using Microsoft.Extensions.Logging;
using PgProxy.Abstractions;

namespace PgProxy.Core.Plugins;

/// <summary>Compiles a source plugin in memory with Roslyn, as a project with implicit usings and nullable enabled would.</summary>
internal static class PluginCompiler
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

    // Reading the metadata of the framework is the costly part of a first compile: shared by every plugin and reload.
    private static readonly Lazy<ImmutableArray<MetadataReference>> References = new(CreateReferences);

    /// <summary>Compiles <paramref name="files"/> into an assembly named <paramref name="assemblyName"/>; returns the image and its PDB.</summary>
    /// <exception cref="PluginLoadException">The sources do not compile; the message lists each error with file, line and code.</exception>
    public static (byte[] Image, byte[] Pdb) Compile(string assemblyName, IReadOnlyList<string> files, string describedAs)
    {
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

        var compilation = CSharpCompilation.Create(assemblyName, trees, References.Value, CompilationOptions);
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
    private static ImmutableArray<MetadataReference> CreateReferences()
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

        return [.. paths.Values.Order(StringComparer.Ordinal).Select(path => (MetadataReference)MetadataReference.CreateFromFile(path))];
    }

    /// <summary>
    /// What a source plugin compiles against besides the runtime: PgProxy.Abstractions, the logging abstractions its
    /// <see cref="ISessionContext.Logger"/> is typed with, and PgProxy.Sql with Google.Protobuf, in which its parse
    /// tree is typed. Not PgProxy.Protocol: the wire codec is the engine's, not part of the plugin contract.
    /// </summary>
    private static System.Reflection.Assembly[] PluginApi =>
        [typeof(IQueryInterceptor).Assembly, typeof(ILogger).Assembly, typeof(Sql.PostgresParser).Assembly, typeof(Google.Protobuf.IMessage).Assembly];
}
