using System.Globalization;
using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.TestSupport;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>
/// The example plugins of plugins/examples, as users would run them: the real pgproxy process with the examples'
/// own configuration pointed at the test server, source plugins compiled at start-up and the compiled one loaded.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class ExamplePluginsTests(PostgresFixture fixture)
{
    private static string Examples => Path.Combine(RepositoryRoot.Path, "plugins", "examples");

    /// <summary>The examples' config.yml with its instance pointed at the test server and a free port.</summary>
    private ConfigDirectory ExamplesConfig()
    {
        string yaml = File.ReadAllText(Path.Combine(Examples, "config.yml"))
            .Replace("port: 6432", "port: 0", StringComparison.Ordinal)
            .Replace("port: 5432", "port: " + fixture.Server.Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("plugin-dir: .", $"plugin-dir: {Examples}", StringComparison.Ordinal);
        return ConfigDirectory.Create(yaml);
    }

    private static string Connect(ProxyProcess proxy, string user, string? applicationName = null) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = proxy.PortOf("reporting"),
            Username = user,
            Database = PostgresServer.Database,
            Pooling = false,
            ApplicationName = applicationName,
        }.ConnectionString;

    [Fact]
    public async Task The_example_configuration_rewrites_refuses_names_sessions_and_masks_emails()
    {
        await using (var setup = new NpgsqlConnection(fixture.Server.ConnectionString(PostgresServer.Superuser)))
        {
            await setup.OpenAsync();
            await using var create = new NpgsqlCommand(
                "CREATE SCHEMA IF NOT EXISTS sales; CREATE TABLE IF NOT EXISTS sales.orders (id int); GRANT USAGE ON SCHEMA sales TO trust_user; GRANT SELECT ON sales.orders TO trust_user",
                setup);
            await create.ExecuteNonQueryAsync();
        }

        using ConfigDirectory directory = ExamplesConfig();
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);

        await using var connection = new NpgsqlConnection(Connect(proxy, PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using var renamed = new NpgsqlCommand("SELECT count(*) FROM legacy_orders", connection);
        await using var applicationName = new NpgsqlCommand("SHOW application_name", connection);
        var ddl = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var command = new NpgsqlCommand("CREATE TABLE t_from_report (v int)", connection);
            await command.ExecuteNonQueryAsync();
        });
        var intern = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var refused = new NpgsqlConnection(Connect(proxy, "intern"));
            await refused.OpenAsync();
        });

        Assert.Equal(0L, await renamed.ExecuteScalarAsync());
        Assert.Equal("via-pgproxy-reporting", await applicationName.ExecuteScalarAsync());
        Assert.Equal("42501", ddl.SqlState);
        Assert.Equal("this connection is read-only: DDL is not allowed", ddl.MessageText);
        Assert.Equal("28000", intern.SqlState);

        // mask_email, prepared and executed more than once: the statement is described only the first time.
        await using var masked = new NpgsqlCommand("SELECT 'ann@example.com'::text AS email, 'kept' AS name", connection);
        await masked.PrepareAsync();
        for (int i = 0; i < 3; i++)
        {
            await using NpgsqlDataReader reader = await masked.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal("***", reader.GetString(0));
            Assert.Equal("kept", reader.GetString(1));
        }

        string interceptLog = await File.ReadAllTextAsync(Path.Combine(directory.Path, "logs", "intercept.log"));
        Assert.Contains("rewritten by rename_tables.rewrite_query", interceptLog, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_compiled_example_plugin_is_loaded_from_its_assembly()
    {
        string configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        string built = Path.Combine(Examples, "query_tagger", "bin", configuration, "net10.0", "query_tagger.dll");
        using ConfigDirectory directory = ConfigDirectory.Create(
            ConfigDirectory.OneInstance(fixture.Server, "  plugin-dir: plugins")
                .Replace("settings:", "plugins:\n  - query_tagger\nsettings:", StringComparison.Ordinal)
            + "\n    intercept:\n      commands:\n        queries:\n          - plugin: query_tagger\n            function: tag_queries\n");
        Directory.CreateDirectory(Path.Combine(directory.Path, "plugins", "query_tagger"));
        File.Copy(built, Path.Combine(directory.Path, "plugins", "query_tagger", "query_tagger.dll"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);

        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = proxy.PortOf("proxy"),
            Username = PostgresServer.TrustUser,
            Database = PostgresServer.Database,
            Pooling = false,
            ApplicationName = "dashboard",
        }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT current_query()", connection);

        Assert.StartsWith("/* app=dashboard */ SELECT current_query()", (string)(await command.ExecuteScalarAsync())!, StringComparison.Ordinal);
    }
}
