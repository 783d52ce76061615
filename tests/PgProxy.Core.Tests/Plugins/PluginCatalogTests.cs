using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.Loader;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Server;
using PgProxy.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;
using PgProxy.Core.Plugins;
using PgProxy.Core.Sessions;
using PgProxy.Protocol;

namespace PgProxy.Core.Tests.Plugins;

public sealed class PluginCatalogTests : IDisposable
{
    private const int PluginLine = 2;
    private const int InterceptorLine = 17;

    /// <summary>The seed's shape: a Python-style name, the query text and a context in, the new text out.</summary>
    private const string SeedStylePlugin = """
        namespace TableauHll;

        public static class Plugin
        {
            public static string RewriteQuery(string query, ISessionContext context) =>
                query.Replace("COUNT(DISTINCT x)", "hll_cardinality(hll_union_agg(x))::BIGINT", StringComparison.Ordinal);
        }
        """;

    private readonly string pluginDirectory = Directory.CreateTempSubdirectory("pgproxy-plugins-").FullName;

    public void Dispose() => Directory.Delete(pluginDirectory, recursive: true);

    [Theory]
    [InlineData("rewrite_query")]
    [InlineData("RewriteQuery")]
    public async Task Seed_style_function_is_found_by_its_python_name_and_by_its_csharp_name(string function)
    {
        WriteFile("tableau_hll.cs", SeedStylePlugin);
        using PluginCatalog catalog = Load("tableau_hll");

        IQueryInterceptor interceptor = catalog.ResolveQueryInterceptor(Reference("tableau_hll", function));
        QueryDecision decision = await interceptor.InterceptQueryAsync(Query("SELECT COUNT(DISTINCT x) FROM t"), new FakeSession(), default);

        Assert.Equal("SELECT hll_cardinality(hll_union_agg(x))::BIGINT FROM t", decision.RewrittenText);
        LoadedPlugin plugin = Assert.Single(catalog.Plugins);
        Assert.Equal(new LoadedPlugin("tableau_hll", PluginKind.SourceFile, Path.Combine(pluginDirectory, "tableau_hll.cs")), plugin);
    }

    [Fact]
    public async Task Function_without_context_rewrites_and_same_text_continues()
    {
        WriteFile("upper.cs", """
            public static class Upper
            {
                public static string upper_keywords(string query) => query.Replace("select", "SELECT", StringComparison.Ordinal);
            }
            """);
        using PluginCatalog catalog = Load("upper");
        IQueryInterceptor interceptor = catalog.ResolveQueryInterceptor(Reference("upper", "upper_keywords"));

        QueryDecision rewritten = await interceptor.InterceptQueryAsync(Query("select 1"), new FakeSession(), default);
        QueryDecision unchanged = await interceptor.InterceptQueryAsync(Query("SELECT 1"), new FakeSession(), default);

        Assert.Equal("SELECT 1", rewritten.RewrittenText);
        Assert.Equal(QueryDecision.Continue, unchanged);
    }

    [Fact]
    public async Task Async_text_function_with_context_and_token_is_accepted_and_null_continues()
    {
        WriteFile("tagger.cs", """
            public static class Tagger
            {
                public static async Task<string?> Tag(string query, ISessionContext context, CancellationToken cancellationToken)
                {
                    await Task.Yield();
                    return query.StartsWith("--", StringComparison.Ordinal) ? null : $"/* {context.User} */ {query}";
                }
            }
            """);
        using PluginCatalog catalog = Load("tagger");
        IQueryInterceptor interceptor = catalog.ResolveQueryInterceptor(Reference("tagger", "tag"));

        Assert.Equal("/* alice */ SELECT 1", (await interceptor.InterceptQueryAsync(Query("SELECT 1"), new FakeSession(), default)).RewrittenText);
        Assert.Equal(QueryDecision.Continue, await interceptor.InterceptQueryAsync(Query("-- SELECT 1"), new FakeSession(), default));
    }

    [Fact]
    public async Task RefusedException_becomes_a_refusal_with_its_sqlstate()
    {
        WriteFile("guard.cs", """
            public static class Guard
            {
                public static string NoDrop(string query) =>
                    query.Contains("DROP", StringComparison.OrdinalIgnoreCase) ? throw new RefusedException("42501", "DROP is not allowed here") : query;

                public static async ValueTask<string> NoDropLater(string query, CancellationToken cancellationToken)
                {
                    await Task.Yield();
                    return NoDrop(query);
                }
            }
            """);
        using PluginCatalog catalog = Load("guard");

        foreach (string function in new[] { "no_drop", "no_drop_later" })
        {
            IQueryInterceptor interceptor = catalog.ResolveQueryInterceptor(Reference("guard", function));
            QueryDecision decision = await RunAsync(interceptor, Query("DROP TABLE t"));

            Assert.True(decision.IsRefusal, function);
            Assert.Equal("42501", decision.RefusalSqlState);
            Assert.Equal("DROP is not allowed here", decision.RefusalMessage);
        }
    }

    [Fact]
    public async Task Other_exceptions_reach_the_caller()
    {
        WriteFile("broken.cs", """
            public static class Broken
            {
                public static string Fail(string query) => throw new InvalidOperationException("plugin bug");
            }
            """);
        using PluginCatalog catalog = Load("broken");
        IQueryInterceptor interceptor = catalog.ResolveQueryInterceptor(Reference("broken", "fail"));

        var e = await Assert.ThrowsAsync<InvalidOperationException>(async () => await interceptor.InterceptQueryAsync(Query("SELECT 1"), new FakeSession(), default));
        Assert.Equal("plugin bug", e.Message);
    }

    [Fact]
    public async Task Class_implementing_IQueryInterceptor_is_found_and_instantiated_per_reference()
    {
        WriteFile("counter.cs", """
            namespace Counting;

            public sealed class QueryCounter : IQueryInterceptor
            {
                private int count;

                public ValueTask<QueryDecision> InterceptQueryAsync(QueryMessage query, ISessionContext session, CancellationToken cancellationToken) =>
                    new(QueryDecision.Rewrite($"{query.Text} -- {++count}"));
            }
            """);
        using PluginCatalog catalog = Load("counter");
        IQueryInterceptor first = catalog.ResolveQueryInterceptor(Reference("counter", "query_counter"));
        IQueryInterceptor second = catalog.ResolveQueryInterceptor(Reference("counter", "QueryCounter"));

        await first.InterceptQueryAsync(Query("SELECT 1"), new FakeSession(), default);
        QueryDecision fromFirst = await first.InterceptQueryAsync(Query("SELECT 1"), new FakeSession(), default);
        QueryDecision fromSecond = await second.InterceptQueryAsync(Query("SELECT 1"), new FakeSession(), default);

        Assert.Equal("SELECT 1 -- 2", fromFirst.RewrittenText);
        Assert.Equal("SELECT 1 -- 1", fromSecond.RewrittenText);
    }

    [Fact]
    public async Task Decision_shaped_function_sees_the_parse_message()
    {
        WriteFile("decider.cs", """
            public static class Decider
            {
                public static QueryDecision Decide(QueryMessage query, ISessionContext context) =>
                    query.Kind == QueryMessageKind.Parse && query.StatementName == "s1" ? QueryDecision.Refuse("0A000", "no prepared s1") : QueryDecision.Continue;
            }
            """);
        using PluginCatalog catalog = Load("decider");
        IQueryInterceptor interceptor = catalog.ResolveQueryInterceptor(Reference("decider", "decide"));

        var parse = new QueryMessage(QueryMessageKind.Parse, "SELECT $1", "s1", [23]);
        Assert.Equal("0A000", (await interceptor.InterceptQueryAsync(parse, new FakeSession(), default)).RefusalSqlState);
        Assert.Equal(QueryDecision.Continue, await interceptor.InterceptQueryAsync(Query("SELECT 1"), new FakeSession(), default));
    }

    [Fact]
    public async Task Startup_function_sets_application_name_and_refuses_a_user()
    {
        WriteFile("startup.cs", """
            public static class Startup
            {
                public static void set_application_name(StartupRequest startup, ISessionContext context) =>
                    startup["application_name"] ??= "via-pgproxy";

                public static StartupDecision RefuseMallory(StartupRequest startup, ISessionContext context) =>
                    startup["user"] == "mallory" ? StartupDecision.Refuse("28000", "mallory may not connect") : StartupDecision.Continue;
            }
            """);
        using PluginCatalog catalog = Load("startup");
        IStartupInterceptor setName = catalog.ResolveStartupInterceptor(Reference("startup", "set_application_name"));
        IStartupInterceptor refuse = catalog.ResolveStartupInterceptor(Reference("startup", "refuse_mallory"));

        var request = new StartupRequest([new("user", "alice"), new("database", "db")]);
        Assert.Equal(StartupDecision.Continue, await setName.InterceptStartupAsync(request, new FakeSession(), default));
        Assert.Equal("via-pgproxy", request["application_name"]);

        var mallory = new StartupRequest([new("user", "mallory")]);
        StartupDecision decision = await refuse.InterceptStartupAsync(mallory, new FakeSession(), default);
        Assert.Equal("28000", decision.RefusalSqlState);
        Assert.Equal("mallory may not connect", decision.RefusalMessage);
    }

    [Fact]
    public async Task Startup_RefusedException_becomes_a_refusal()
    {
        WriteFile("gate.cs", """
            public static class Gate
            {
                public static void Check(StartupRequest startup, ISessionContext context) => throw new RefusedException("28000", "closed");
            }
            """);
        using PluginCatalog catalog = Load("gate");

        StartupDecision decision = await RunAsync(catalog.ResolveStartupInterceptor(Reference("gate", "check")), new StartupRequest([new("user", "bob")]));

        Assert.Equal("28000", decision.RefusalSqlState);
        Assert.Equal("closed", decision.RefusalMessage);
    }

    [Fact]
    public async Task Source_folder_compiles_every_file_except_build_output()
    {
        WriteFile("multi/Rules.cs", """
            namespace Multi;

            internal static class Rules
            {
                public const string Suffix = " /* multi */";
            }
            """);
        WriteFile("multi/sub/Rewriter.cs", """
            namespace Multi;

            public static class Rewriter
            {
                public static string Rewrite(string query) => query + Rules.Suffix;
            }
            """);
        WriteFile("multi/obj/Generated.cs", "this is not C#");
        WriteFile("multi/bin/Debug/Old.cs", "neither is this");
        using PluginCatalog catalog = Load("multi");

        QueryDecision decision = await catalog.ResolveQueryInterceptor(Reference("multi", "rewrite")).InterceptQueryAsync(Query("SELECT 1"), new FakeSession(), default);

        Assert.Equal("SELECT 1 /* multi */", decision.RewrittenText);
        Assert.Equal(PluginKind.SourceDirectory, Assert.Single(catalog.Plugins).Kind);
    }

    [Fact]
    public void Compile_error_names_the_file_line_and_compiler_code()
    {
        string file = WriteFile("typo.cs", """
            public static class Typo
            {
                public static string Rewrite(string query) =>
                    query.Replace("a", undefinedName, StringComparison.Ordinal);
            }
            """);

        var e = Assert.Throws<PluginLoadException>(() => Load("typo"));

        Assert.Contains("plugin \"typo\"", e.Message, StringComparison.Ordinal);
        Assert.Contains($"config line {PluginLine}", e.Message, StringComparison.Ordinal);
        Assert.Contains($"{file}(4,", e.Message, StringComparison.Ordinal);
        Assert.Contains("error CS0103", e.Message, StringComparison.Ordinal);
        Assert.Contains("undefinedName", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("PgProxy.Protocol.Framing", "WireFormat")]
    [InlineData("PgProxy.Core.Hosting", "ProxyServer")]
    [InlineData("YamlDotNet.Serialization", "Deserializer")]
    public void Source_plugin_cannot_reach_the_engine_beyond_the_plugin_api(string hostNamespace, string hostType)
    {
        WriteFile("reach.cs", $$"""
            using {{hostNamespace}};

            public static class Reach
            {
                public static string Rewrite(string query) => query + typeof({{hostType}}).Name;
            }
            """);

        var e = Assert.Throws<PluginLoadException>(() => Load("reach"));

        Assert.Contains("failed to compile", e.Message, StringComparison.Ordinal);
        Assert.Contains($"error CS0246: The type or namespace name '{hostType}' could not be found", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Source_plugin_compiles_against_the_plugin_api_the_logging_abstractions_and_PgProxy_Sql()
    {
        WriteFile("api.cs", """
            using Microsoft.Extensions.Logging;
            using PgProxy.Sql;
            using PgQuery;

            public static class Api
            {
                public static string Rewrite(string query, ISessionContext session)
                {
                    session.Logger.LogDebug("{User} on {Instance}", session.User, session.InstanceName);
                    Func<string, ParseResult> parse = PostgresParser.Parse;
                    bool between = session.TransactionStatus is TransactionStatus.Idle or TransactionStatus.Unknown;
                    return parse is null || !between ? query : query + ";";
                }
            }
            """);
        using PluginCatalog catalog = Load("api");

        IQueryInterceptor interceptor = catalog.ResolveQueryInterceptor(Reference("api", "rewrite"));

        Assert.Equal("SELECT 1;", (await interceptor.InterceptQueryAsync(Query("SELECT 1"), new FakeSession(), default)).RewrittenText);
    }

    [Fact]
    public void Missing_plugin_names_the_plugin_the_line_and_where_it_was_looked_for()
    {
        var e = Assert.Throws<PluginLoadException>(() => Load("nowhere"));

        Assert.StartsWith($"plugin \"nowhere\" (config line {PluginLine}) not found: looked for {Path.Combine(pluginDirectory, "nowhere.cs")}, ", e.Message, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(pluginDirectory, "nowhere", "*.cs"), e.Message, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(pluginDirectory, "nowhere", "nowhere.dll"), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_function_names_the_function_and_the_line()
    {
        WriteFile("tableau_hll.cs", SeedStylePlugin);
        using PluginCatalog catalog = Load("tableau_hll");

        var e = Assert.Throws<PluginLoadException>(() => catalog.ResolveQueryInterceptor(Reference("tableau_hll", "rewrite_queries")));

        Assert.Contains($"config line {InterceptorLine}", e.Message, StringComparison.Ordinal);
        Assert.Contains("\"rewrite_queries\"", e.Message, StringComparison.Ordinal);
        Assert.Contains("RewriteQueries", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_signature_names_the_method_and_the_accepted_shapes()
    {
        WriteFile("tableau_hll.cs", SeedStylePlugin);
        using PluginCatalog catalog = Load("tableau_hll");

        // A query function is not a start-up function.
        var e = Assert.Throws<PluginLoadException>(() => catalog.ResolveStartupInterceptor(Reference("tableau_hll", "rewrite_query")));

        Assert.Contains($"config line {InterceptorLine}", e.Message, StringComparison.Ordinal);
        Assert.Contains("TableauHll.Plugin.RewriteQuery(String, ISessionContext)", e.Message, StringComparison.Ordinal);
        Assert.Contains("StartupDecision F(StartupRequest startup, ISessionContext context)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Same_function_in_two_types_is_ambiguous_and_both_are_named()
    {
        WriteFile("twice.cs", """
            namespace One { public static class A { public static string Rewrite(string query) => query; } }
            namespace Two { public static class B { public static string Rewrite(string query, ISessionContext context) => query; } }
            """);
        using PluginCatalog catalog = Load("twice");

        var e = Assert.Throws<PluginLoadException>(() => catalog.ResolveQueryInterceptor(Reference("twice", "rewrite")));

        Assert.Contains($"config line {InterceptorLine}", e.Message, StringComparison.Ordinal);
        Assert.Contains("ambiguous", e.Message, StringComparison.Ordinal);
        Assert.Contains("One.A.Rewrite", e.Message, StringComparison.Ordinal);
        Assert.Contains("Two.B.Rewrite", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Compiled_plugin_loads_with_its_private_dependency()
    {
        string folder = Path.Combine(pluginDirectory, "compiled");
        Directory.CreateDirectory(folder);
        MetadataReference helper = Emit("Compiled.Helper", Path.Combine(folder, "Compiled.Helper.dll"), """
            namespace Compiled.Helper;
            public static class Marker { public static string Mark(string text) => text + " /* compiled */"; }
            """);
        Emit("compiled", Path.Combine(folder, "compiled.dll"), """
            using System.Threading;
            using System.Threading.Tasks;
            using PgProxy.Abstractions;

            namespace Compiled;

            public sealed class MarkQueries : IQueryInterceptor
            {
                public ValueTask<QueryDecision> InterceptQueryAsync(QueryMessage query, ISessionContext session, CancellationToken cancellationToken) =>
                    new(QueryDecision.Rewrite(Compiled.Helper.Marker.Mark(query.Text)));
            }
            """, helper);
        using PluginCatalog catalog = Load("compiled");

        QueryDecision decision = await catalog.ResolveQueryInterceptor(Reference("compiled", "mark_queries")).InterceptQueryAsync(Query("SELECT 1"), new FakeSession(), default);

        Assert.Equal("SELECT 1 /* compiled */", decision.RewrittenText);
        Assert.Equal(new LoadedPlugin("compiled", PluginKind.Assembly, Path.Combine(folder, "compiled.dll")), Assert.Single(catalog.Plugins));
    }

    [Fact]
    public void Disposed_catalog_lets_the_plugin_unload()
    {
        WriteFile("unloadable.cs", """
            public static class Unloadable
            {
                public static string Rewrite(string query) => query + ";";
            }
            """);

        WeakReference context = LoadUseAndDispose();

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (context.IsAlive && DateTime.UtcNow < deadline)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        Assert.False(context.IsAlive, "the plugin's load context was not collected after the catalog was disposed");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private WeakReference LoadUseAndDispose()
    {
        PluginCatalog catalog = Load("unloadable");
        IQueryInterceptor interceptor = catalog.ResolveQueryInterceptor(Reference("unloadable", "rewrite"));
        QueryDecision decision = interceptor.InterceptQueryAsync(Query("SELECT 1"), new FakeSession(), default).AsTask().GetAwaiter().GetResult();
        Assert.Equal("SELECT 1;", decision.RewrittenText);
        var context = new WeakReference(AssemblyLoadContext.All.Single(candidate => candidate.Name == "pgproxy-plugin:unloadable"));
        catalog.Dispose();
        return context;
    }

    private PluginCatalog Load(string plugin) =>
        PluginCatalog.Load(
            new ProxyConfig([new PluginReference(plugin, PluginLine)], new ProxySettings { PluginDirectory = pluginDirectory }, [], pluginDirectory),
            NullLoggerFactory.Instance);

    private static InterceptorReference Reference(string plugin, string function) => new(plugin, function, InterceptorLine);

    private static QueryMessage Query(string text) => new(QueryMessageKind.SimpleQuery, text, null, []);

    private string WriteFile(string relativePath, string text)
    {
        string path = Path.Combine(pluginDirectory, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>Builds a DLL as a plugin author's project would, against the framework and the plugin API.</summary>
    private static PortableExecutableReference Emit(string assemblyName, string path, string source, params MetadataReference[] extra)
    {
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(file => (MetadataReference)MetadataReference.CreateFromFile(file))
            .Concat(extra);
        var compilation = CSharpCompilation.Create(
            assemblyName,
            [CSharpSyntaxTree.ParseText(source)],
            references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        using (FileStream output = File.Create(path))
        {
            var result = compilation.Emit(output);
            Assert.True(result.Success, string.Join(Environment.NewLine, result.Diagnostics));
        }

        return MetadataReference.CreateFromFile(path);
    }

    /// <summary>Calls an interceptor as the engine does: a RefusedException reaches the runner, which makes it a refusal.</summary>
    private static ValueTask<QueryDecision> RunAsync(IQueryInterceptor interceptor, QueryMessage query) =>
        new InterceptorRunner<IQueryInterceptor, QueryMessage, QueryDecision>(InterceptorKinds.Query, Context())
            .RunAsync(new InterceptorEntry<IQueryInterceptor>("test.query", interceptor, TimeSpan.FromSeconds(5), InterceptorFailurePolicy.PassThrough), query, default);

    private static ValueTask<StartupDecision> RunAsync(IStartupInterceptor interceptor, StartupRequest startup) =>
        new InterceptorRunner<IStartupInterceptor, StartupRequest, StartupDecision>(InterceptorKinds.Connect, Context())
            .RunAsync(new InterceptorEntry<IStartupInterceptor>("test.connect", interceptor, TimeSpan.FromSeconds(5), InterceptorFailurePolicy.PassThrough), startup, default);

    private static SessionContext Context() => new(1, "proxy", null, [new("user", "alice")], new ServerProtocolState(), NullLogger.Instance);

    private sealed class FakeSession : ISessionContext
    {
        public string InstanceName => "proxy";

        public EndPoint? ClientAddress => new IPEndPoint(IPAddress.Loopback, 40000);

        public string User => "alice";

        public string Database => "db";

        public string? ApplicationName => null;

        public IReadOnlyDictionary<string, string> StartupParameters { get; } = new Dictionary<string, string> { ["user"] = "alice", ["database"] = "db" };

        public Encoding ClientEncoding => Encoding.UTF8;

        public Abstractions.TransactionStatus TransactionStatus => default;

        public IDictionary<string, object?> State { get; } = new Dictionary<string, object?>();

        public ILogger Logger => NullLogger.Instance;

        public Task<UpstreamQueryResult> QueryUpstreamAsync(string sql, CancellationToken cancellationToken = default) =>
            throw new UpstreamQueryException("no upstream in this test");
    }
}
