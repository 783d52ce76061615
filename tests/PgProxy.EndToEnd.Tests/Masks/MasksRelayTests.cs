using System.Globalization;
using System.Runtime.InteropServices;
using Npgsql;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Masks;

/// <summary>Masks on live traffic through the pgproxy command, with psql (text, simple protocol) and Npgsql (binary, extended).</summary>
[Collection(SharedPostgres.Name)]
public sealed class MasksRelayTests(PostgresFixture fixture) : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private const string Masks = """
            masks:
              - name: emails
                columns: [public.masks_customers.email]
                with: email
                unless: {user: [md5_user]}
              - name: cards
                columns: [masks_customers.card]
                with: {keep-last: 4}
              - name: notes-dry-run
                columns: ['*.note']
                with: 'null'
                mode: log-only
        """;

    public async Task InitializeAsync()
    {
        // Made directly on the server, as the superuser, so that the proxy learns them from the catalog like any table.
        await fixture.Server.QueryAsSuperuserAsync("""
            DROP VIEW IF EXISTS masks_customer_view;
            DROP TABLE IF EXISTS masks_customers, masks_copies;
            CREATE TABLE masks_customers (id int PRIMARY KEY, email text, card varchar(19), note text);
            INSERT INTO masks_customers VALUES (1, 'alice@example.com', '4111111111111234', 'likes tea'), (2, 'bob@example.org', '5500000000005678', NULL);
            CREATE VIEW masks_customer_view AS SELECT c.id, c.email AS contact, upper(c.email) AS shout FROM masks_customers c;
            CREATE TABLE masks_copies (value text);
            GRANT SELECT ON masks_customers, masks_customer_view TO PUBLIC;
            GRANT ALL ON masks_copies TO PUBLIC;
            """);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Aliases_and_subqueries_do_not_escape_a_mask_in_text_format()
    {
        await using ProxyProcess proxy = await StartAsync(Masks);
        ProcessResult result = await Psql.RunAsync(Target(proxy), """
            SELECT id, email AS e, card AS c FROM masks_customers ORDER BY id;
            SELECT x.email FROM masks_customers x WHERE id = 2;
            SELECT s.hidden FROM (SELECT email AS hidden FROM masks_customers WHERE id = 1) s;

            """, new PsqlOptions { Arguments = ["-At"] });

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(["1|a***@example.com|************1234", "2|b***@example.org|************5678", "b***@example.org", "a***@example.com"], Lines(result.StandardOutput));
    }

    [Fact]
    public async Task A_prepared_statement_described_once_is_masked_in_binary_on_every_execution()
    {
        await using ProxyProcess proxy = await StartAsync(Masks);
        await using var connection = new NpgsqlConnection(proxy.NpgsqlConnectionString("masks-prepared"));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT email AS contact, card, id FROM masks_customers WHERE id = $1", connection);
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer });
        await command.PrepareAsync();
        for (int i = 0; i < 6; i++)
        {
            command.Parameters[0].Value = 1 + (i % 2);
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());

            // Npgsql asks for every column in binary: the int beside the masked text must still read as an int.
            Assert.Equal(i % 2 == 0 ? "a***@example.com" : "b***@example.org", reader.GetString(0));
            Assert.Equal(i % 2 == 0 ? "************1234" : "************5678", reader.GetString(1));
            Assert.Equal(1 + (i % 2), reader.GetInt32(2));
        }
    }

    [Fact]
    public async Task A_view_column_is_masked_as_its_base_column_and_a_computed_one_is_refused()
    {
        await using ProxyProcess proxy = await StartAsync(Masks);
        await using var connection = new NpgsqlConnection(proxy.NpgsqlConnectionString("masks-view"));
        await connection.OpenAsync();
        await using var plain = new NpgsqlCommand("SELECT contact FROM masks_customer_view WHERE id = 1", connection);
        Assert.Equal("a***@example.com", await plain.ExecuteScalarAsync());

        await using var computed = new NpgsqlCommand("SELECT shout FROM masks_customer_view WHERE id = 1", connection);
        PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => computed.ExecuteScalarAsync());
        Assert.Equal("42501", refused.SqlState);
        Assert.Contains("mask \"emails\"", refused.MessageText, StringComparison.Ordinal);

        // The session goes on after the refused result.
        await using var after = new NpgsqlCommand("SELECT id FROM masks_customer_view WHERE id = 2", connection);
        Assert.Equal(2, await after.ExecuteScalarAsync());
    }

    [Theory]
    [InlineData("SELECT upper(email) FROM masks_customers")]
    [InlineData("SELECT email::text AS e FROM masks_customers")]
    [InlineData("SELECT email || '' FROM masks_customers")]
    [InlineData("SELECT row_to_json(c) FROM masks_customers c")]
    [InlineData("SELECT upper(s.e) FROM (SELECT email AS e FROM masks_customers) s")]
    [InlineData("SELECT email FROM masks_customers UNION SELECT 'x'")]
    public async Task A_computation_over_a_masked_column_is_refused(string sql)
    {
        await using ProxyProcess proxy = await StartAsync(Masks);
        await using var connection = new NpgsqlConnection(proxy.NpgsqlConnectionString("masks-computed"));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteScalarAsync());
        Assert.Equal("42501", refused.SqlState);
        Assert.Contains("computes over", refused.MessageText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_refused_computation_does_not_run_and_the_other_statements_of_its_query_do()
    {
        await using ProxyProcess proxy = await StartAsync(Masks);
        ProcessResult result = await Psql.RunAsync(
            Target(proxy), "", new PsqlOptions { OnErrorStop = false, Arguments = ["-At", "-c", "SELECT 'first-ran'; INSERT INTO masks_copies SELECT email FROM masks_customers"] });

        Assert.Contains("first-ran", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("computes over masks_customers.email", result.StandardError, StringComparison.Ordinal);
        Assert.Equal("0", (await fixture.Server.QueryAsSuperuserAsync("SELECT count(*) FROM masks_copies")).Trim());
    }

    [Fact]
    public async Task Copy_of_a_masked_table_to_the_client_is_refused()
    {
        await using ProxyProcess proxy = await StartAsync(Masks);
        ProcessResult table = await Psql.RunAsync(Target(proxy), "", new PsqlOptions { OnErrorStop = false, Arguments = ["-At", "-c", "COPY masks_customers TO STDOUT"] });
        ProcessResult query = await Psql.RunAsync(Target(proxy), "", new PsqlOptions { OnErrorStop = false, Arguments = ["-At", "-c", "COPY (SELECT id, email FROM masks_customers) TO STDOUT"] });

        Assert.Contains("COPY of masks_customers is refused", table.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("alice", table.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("refused by PgProxy mask", query.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("alice", query.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unless_exempts_a_user_from_one_mask_and_not_from_the_others()
    {
        await using ProxyProcess proxy = await StartAsync(Masks);
        var builder = new NpgsqlConnectionStringBuilder(proxy.NpgsqlConnectionString("masks-unless"))
        {
            Username = PostgresServer.Md5User,
            Password = PostgresServer.Md5Password,
        };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT email, card, upper(email) FROM masks_customers WHERE id = 1", connection);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal("alice@example.com", reader.GetString(0));
        Assert.Equal("************1234", reader.GetString(1));
        Assert.Equal("ALICE@EXAMPLE.COM", reader.GetString(2));
    }

    [Fact]
    public async Task A_log_only_mask_changes_nothing_logs_what_it_would_do_and_counts_it()
    {
        string interceptLog = Path.Combine(Path.GetTempPath(), $"pgproxy-masks-{Guid.NewGuid():N}.log");
        using ConfigDirectory directory = ConfigDirectory.Create(Configuration(Masks, $"  intercept-log: {interceptLog}\n"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        ProcessResult result = await Psql.RunAsync(Target(proxy), "SELECT note FROM masks_customers WHERE id = 1;\n", new PsqlOptions { Arguments = ["-At"] });
        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(["likes tea"], Lines(result.StandardOutput));

        // A reload writes the counters of the masks it replaces.
        await proxy.SignalAsync(PosixSignal.SIGHUP);
        await Waiting.WaitUntilAsync(
            () => Task.FromResult(File.Exists(interceptLog) && File.ReadAllText(interceptLog).Contains("mask notes-dry-run (log-only): matched 1, applied 0, log-only hits 1", StringComparison.Ordinal)),
            Deadline,
            "the log-only mask's counters in the intercept log");
        Assert.Contains("log-only mask notes-dry-run would mask column note", File.ReadAllText(interceptLog), StringComparison.Ordinal);
        File.Delete(interceptLog);
    }

    [Fact]
    public async Task Masks_a_reload_adds_reach_an_open_session_at_its_next_statement()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Configuration(""));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using var connection = new NpgsqlConnection(proxy.NpgsqlConnectionString("masks-reload"));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT email FROM masks_customers WHERE id = 1", connection);
        Assert.Equal("alice@example.com", await command.ExecuteScalarAsync());

        await File.WriteAllTextAsync(directory.ConfigFile, Configuration(Masks));
        await proxy.SignalAsync(PosixSignal.SIGHUP);
        await proxy.WaitForOutputAsync(output => output.Contains("generation 2", StringComparison.Ordinal), Deadline, "the reload applied");
        Assert.Equal("a***@example.com", await command.ExecuteScalarAsync());

        // The session began without masks, so without its statements' columns: it keeps them from its first statement
        // after the reload, and a statement it prepares then is masked on executions that are not described again.
        await using var prepared = new NpgsqlCommand("SELECT card FROM masks_customers WHERE id = 2", connection);
        await prepared.PrepareAsync();
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal("************5678", await prepared.ExecuteScalarAsync());
        }
    }

    [Fact]
    public async Task Rows_of_a_table_created_again_are_never_released_unmasked()
    {
        await using ProxyProcess proxy = await StartAsync(Masks);
        await using var connection = new NpgsqlConnection(proxy.NpgsqlConnectionString("masks-recreated"));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT email FROM masks_customers WHERE id = 2", connection);
        Assert.Equal("b***@example.org", await command.ExecuteScalarAsync());

        // Another session drops and creates the table again: a new OID the proxy's catalog has not seen.
        await fixture.Server.QueryAsSuperuserAsync("""
            DROP VIEW masks_customer_view;
            DROP TABLE masks_customers;
            CREATE TABLE masks_customers (id int PRIMARY KEY, email text, card varchar(19), note text);
            INSERT INTO masks_customers VALUES (2, 'carol@example.net', '0', NULL);
            GRANT SELECT ON masks_customers TO PUBLIC;
            """);
        object? first;
        try
        {
            first = await command.ExecuteScalarAsync();
        }
        catch (PostgresException refused) when (refused.SqlState == "42501")
        {
            first = null;
        }

        Assert.NotEqual("carol@example.net", first);
        Assert.Equal("c***@example.net", await command.ExecuteScalarAsync());
    }

    private async Task<ProxyProcess> StartAsync(string masks, string settings = "")
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Configuration(masks, settings));
        return await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
    }

    private string Configuration(string masks, string settings = "") => string.Create(CultureInfo.InvariantCulture, $$"""
        settings:
          log-level: info
        {{settings}}
        instances:
          - listen: {name: proxy, host: 127.0.0.1, port: 0}
            redirect: {name: postgresql, host: {{fixture.Server.Host}}, port: {{fixture.Server.Port}}}
        {{masks}}
        """);

    private static string[] Lines(string output) => output.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private static PsqlTarget Target(ProxyProcess proxy) => new("127.0.0.1", proxy.PortOf("proxy"), PostgresServer.TrustUser, PostgresServer.Database);
}
