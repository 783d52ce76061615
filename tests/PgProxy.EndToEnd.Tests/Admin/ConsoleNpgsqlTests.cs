using Npgsql;
using PgProxy.Core.Admin;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.EndToEnd.Tests.Relay;

namespace PgProxy.EndToEnd.Tests.Admin;

/// <summary>Npgsql, with Server Compatibility Mode=NoTypeLoading, reads the console through the extended protocol.</summary>
[Collection(SharedPostgres.Name)]
public sealed class ConsoleNpgsqlTests(PostgresFixture fixture) : IDisposable
{
    private readonly ConsoleSetup console = ConsoleSetup.Create();

    public void Dispose() => console.Dispose();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Npgsql_reads_show_sessions_with_its_columns_and_a_relayed_session_among_the_rows(bool dedicated)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        string name = Backends.UniqueApplicationName("npgsql-read");
        await using var relayed = new NpgsqlConnection(Backends.WithApplicationName(proxy.ConnectionString(PostgresServer.TrustUser), name));
        await relayed.OpenAsync();
        await using var connection = new NpgsqlConnection(ConsoleSetup.ConnectionString(proxy, dedicated));
        await connection.OpenAsync();

        await using var command = new NpgsqlCommand("SHOW SESSIONS", connection);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        Assert.Equal(ConsoleCatalog.Of(ConsoleCommandKind.ShowSessions).Columns, Enumerable.Range(0, reader.FieldCount).Select(reader.GetName));
        var rows = new List<Dictionary<string, string?>>();
        while (await reader.ReadAsync())
        {
            rows.Add(Enumerable.Range(0, reader.FieldCount).ToDictionary(reader.GetName, i => reader.IsDBNull(i) ? null : reader.GetString(i)));
        }

        Dictionary<string, string?> row = rows.Single(r => r["application_name"] == name);
        Assert.Equal(("proxy", PostgresServer.TrustUser, "idle"), (row["instance"], row["user"], row["state"]));
        Assert.Null(row["fingerprint"]);
        Dictionary<string, string?> self = rows.Single(r => r["database"] == "pgproxy");
        Assert.Equal(("active", ConsoleSetup.User), (self["state"], self["user"]));
    }

    [Fact]
    public async Task Npgsql_gets_a_console_error_as_a_PostgresException_and_the_connection_stays_usable()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        await using var connection = new NpgsqlConnection(ConsoleSetup.ConnectionString(proxy));
        await connection.OpenAsync();

        await using var wrong = new NpgsqlCommand("SHOW EVERYTHING", connection);
        PostgresException error = await Assert.ThrowsAsync<PostgresException>(() => wrong.ExecuteNonQueryAsync());
        await using var version = new NpgsqlCommand("show version", connection);

        Assert.Equal(PostgresErrorCodes.SyntaxError, error.SqlState);
        Assert.Contains("SHOW HELP", error.Hint, StringComparison.Ordinal);
        Assert.Equal($"PgProxy {ConsoleExecutor.Version}", await version.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Npgsql_runs_commands_without_rows_and_prepared_statements()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        await using var connection = new NpgsqlConnection(ConsoleSetup.ConnectionString(proxy));
        await connection.OpenAsync();

        await using var reset = new NpgsqlCommand("RESET STATS", connection);
        await reset.ExecuteNonQueryAsync();
        await using var help = new NpgsqlCommand("SHOW HELP", connection);
        await help.PrepareAsync();
        int first = await CountAsync(help);
        int second = await CountAsync(help);

        Assert.Equal(ConsoleCatalog.All.Count, first);
        Assert.Equal(first, second);
    }

    [Fact]
    public async Task Npgsql_sees_the_server_version_it_parses_and_PgProxy_in_it()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        await using var connection = new NpgsqlConnection(ConsoleSetup.ConnectionString(proxy));
        await connection.OpenAsync();

        Assert.Equal(15, connection.PostgreSqlVersion.Major);
        Assert.Contains("PgProxy", connection.ServerVersion, StringComparison.Ordinal);
    }

    private static async Task<int> CountAsync(NpgsqlCommand command)
    {
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        int rows = 0;
        while (await reader.ReadAsync())
        {
            rows++;
        }

        return rows;
    }
}
