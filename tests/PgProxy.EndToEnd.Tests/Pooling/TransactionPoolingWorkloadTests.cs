using System.Globalization;
using Npgsql;
using NpgsqlTypes;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Pooling;

/// <summary>
/// Transaction pooling under load and with real tools: 200 clients on a pool of 10 running transactions, pipelined
/// prepared statements, errors, cancels, COPY both ways and large results, every result checked; and pg_dump, whose
/// dump through the pool must equal the direct one.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class TransactionPoolingWorkloadTests(PostgresFixture fixture) : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(120);
    private readonly string authFile = Path.Combine(Path.GetTempPath(), $"pgproxy-txw-users-{Guid.NewGuid():N}.txt");
    private readonly string suffix = Guid.NewGuid().ToString("N")[..8];

    public async Task InitializeAsync()
    {
        string scram = await fixture.Server.QueryAsSuperuserAsync($"SELECT rolpassword FROM pg_authid WHERE rolname = '{PostgresServer.ScramUser}'");
        await File.WriteAllTextAsync(authFile, $"\"{PostgresServer.ScramUser}\" \"{scram}\"\n");
    }

    public Task DisposeAsync()
    {
        File.Delete(authFile);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Two_hundred_clients_on_a_pool_of_ten_get_every_result_right()
    {
        const int clients = 200;
        string table = $"tx_mixed_{suffix}";
        await using ProxyHarness proxy = await StartAsync(size: 10);
        await using (NpgsqlConnection setup = await OpenAsync(proxy))
        {
            await ExecuteAsync(setup, $"CREATE TABLE {table} (client int NOT NULL, n int NOT NULL)");
        }

        try
        {
            Task[] runs = [.. Enumerable.Range(0, clients).Select(client => Task.Run(() => RunClientAsync(proxy, table, client)))];
            await Task.WhenAll(runs).WaitAsync(Deadline);

            await using NpgsqlConnection check = await OpenAsync(proxy);
            Assert.Equal((long)clients * (3 + 100), await ScalarAsync<long>(check, $"SELECT count(*) FROM {table}"));
            Assert.Equal(0L, await ScalarAsync<long>(check, $"SELECT count(*) FROM {table} WHERE n < 0"));
            string servers = await fixture.Server.QueryAsSuperuserAsync($"SELECT count(*) FROM pg_stat_activity WHERE usename = '{PostgresServer.ScramUser}' AND application_name = ''");
            Assert.InRange(int.Parse(servers, CultureInfo.InvariantCulture), 1, 10);
        }
        finally
        {
            await fixture.Server.QueryAsSuperuserAsync($"DROP TABLE IF EXISTS {table}");
        }
    }

    private async Task RunClientAsync(ProxyHarness proxy, string table, int client)
    {
        await using NpgsqlConnection connection = await OpenAsync(proxy);

        // Pipelined prepared statements: one batch, three statements, prepared on first use.
        for (int round = 0; round < 3; round++)
        {
            await using var batch = new NpgsqlBatch(connection);
            for (int k = 1; k <= 3; k++)
            {
                var command = new NpgsqlBatchCommand("SELECT $1::int * $2::int");
                command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = client });
                command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = k });
                batch.BatchCommands.Add(command);
            }

            await batch.PrepareAsync();
            await using NpgsqlDataReader reader = await batch.ExecuteReaderAsync();
            for (int k = 1; k <= 3; k++)
            {
                Assert.True(await reader.ReadAsync());
                Assert.Equal(client * k, reader.GetInt32(0));
                await reader.NextResultAsync();
            }
        }

        // A transaction that commits, and one that fails and rolls back.
        await using (NpgsqlTransaction transaction = await connection.BeginTransactionAsync())
        {
            for (int n = 1; n <= 3; n++)
            {
                await ExecuteAsync(connection, $"INSERT INTO {table} VALUES ({client}, {n})");
            }

            await transaction.CommitAsync();
        }

        await using (NpgsqlTransaction failing = await connection.BeginTransactionAsync())
        {
            await ExecuteAsync(connection, $"INSERT INTO {table} VALUES ({client}, -1)");
            PostgresException division = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(connection, "SELECT 1 / 0"));
            Assert.Equal("22012", division.SqlState);
            await failing.RollbackAsync();
        }

        PostgresException outside = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(connection, "SELECT 1 / 0"));
        Assert.Equal("22012", outside.SqlState);

        // COPY in, then out.
        await using (NpgsqlBinaryImporter import = await connection.BeginBinaryImportAsync($"COPY {table} (client, n) FROM STDIN (FORMAT BINARY)"))
        {
            for (int n = 1000; n < 1100; n++)
            {
                await import.StartRowAsync();
                await import.WriteAsync(client, NpgsqlDbType.Integer);
                await import.WriteAsync(n, NpgsqlDbType.Integer);
            }

            await import.CompleteAsync();
        }

        int lines = 0;
        using (TextReader export = await connection.BeginTextExportAsync($"COPY (SELECT n FROM {table} WHERE client = {client} ORDER BY n) TO STDOUT"))
        {
            while (await export.ReadLineAsync() is not null)
            {
                lines++;
            }
        }

        Assert.Equal(103, lines);

        // A large result, whole.
        Assert.Equal(20_000L * 20_001 / 2, await ScalarAsync<long>(connection, "SELECT sum(g)::bigint FROM (SELECT generate_series(1, 20000) AS g) s"));
        await using (var rows = new NpgsqlCommand("SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g", connection))
        await using (NpgsqlDataReader reader = await rows.ExecuteReaderAsync())
        {
            int seen = 0;
            while (await reader.ReadAsync())
            {
                seen++;
                Assert.Equal(seen, reader.GetInt32(0));
            }

            Assert.Equal(5000, seen);
        }

        // Some clients cancel a statement of theirs.
        if (client % 25 == 0)
        {
            string sql = $"SELECT pg_sleep(20) /* client {client} */";
            await using var sleep = new NpgsqlCommand(sql, connection);
            Task running = sleep.ExecuteNonQueryAsync();
            await Waiting.WaitUntilAsync(
                async () => await fixture.Server.QueryAsSuperuserAsync($"SELECT count(*) FROM pg_stat_activity WHERE query = '{sql}' AND state = 'active'") == "1",
                Deadline,
                $"client {client}'s sleep to run");
            sleep.Cancel();
            OperationCanceledException cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
            Assert.Equal("57014", Assert.IsType<PostgresException>(cancelled.InnerException).SqlState);
        }

        Assert.Equal(client, await ScalarAsync<int>(connection, $"SELECT {client}"));
    }

    [Fact]
    public async Task Pg_dump_through_the_transaction_pool_gives_the_same_dump_as_direct()
    {
        string schema = $"dumped_{suffix}";
        await using ProxyHarness proxy = await StartAsync(size: 2);
        await using (NpgsqlConnection setup = await OpenAsync(proxy))
        {
            await ExecuteAsync(setup, $"""
                CREATE SCHEMA {schema};
                CREATE TABLE {schema}.orders (id serial PRIMARY KEY, customer text NOT NULL, total numeric(10, 2), placed timestamptz DEFAULT now());
                CREATE VIEW {schema}.big_orders AS SELECT id, customer FROM {schema}.orders WHERE total > 100;
                CREATE FUNCTION {schema}.double_it(n int) RETURNS int LANGUAGE sql AS 'SELECT n * 2';
                INSERT INTO {schema}.orders (customer, total, placed) SELECT 'c' || g, g * 1.5, '2026-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 500) g;
                """);
        }

        // Another client on the pool with settings of its own, which must not leak into the dump.
        await using NpgsqlConnection noisy = await OpenAsync(proxy);
        await ExecuteAsync(noisy, "SET search_path TO pg_catalog; SET DateStyle TO 'SQL, DMY'; SET extra_float_digits TO -3");

        try
        {
            string pgDump = Path.Combine(PostgresInstallation.FindBinDirectory(), "pg_dump");
            Task<ProcessResult> direct = DumpAsync(pgDump, fixture.Server.Host, fixture.Server.Port, schema);
            ProcessResult pooled = await DumpAsync(pgDump, proxy.Host, proxy.Port, schema);
            ProcessResult directResult = await direct;

            Assert.True(directResult.Succeeded, directResult.ToString());
            Assert.True(pooled.Succeeded, pooled.ToString());
            Assert.Contains("COPY " + schema + ".orders", directResult.StandardOutput, StringComparison.Ordinal);
            // pg_dump writes a random key on its \restrict and \unrestrict lines: every other line must be equal.
            Assert.Equal(WithoutRestrictKeys(directResult.StandardOutput), WithoutRestrictKeys(pooled.StandardOutput));
        }
        finally
        {
            await fixture.Server.QueryAsSuperuserAsync($"DROP SCHEMA IF EXISTS {schema} CASCADE");
        }
    }

    private static string WithoutRestrictKeys(string dump) =>
        string.Join('\n', dump.Split('\n').Where(line => !line.StartsWith("\\restrict ", StringComparison.Ordinal) && !line.StartsWith("\\unrestrict ", StringComparison.Ordinal)));

    private static Task<ProcessResult> DumpAsync(string pgDump, string host, int port, string schema) =>
        ProcessRunner.RunAsync(
            pgDump,
            ["-h", host, "-p", port.ToString(CultureInfo.InvariantCulture), "-U", PostgresServer.ScramUser, "-n", schema, PostgresServer.Database],
            TimeSpan.FromSeconds(60),
            environment: new Dictionary<string, string?> { ["PGPASSWORD"] = PostgresServer.ScramPassword, ["PGSSLMODE"] = "disable" });

    private async Task<ProxyHarness> StartAsync(int size)
    {
        ProxyConfig config = TestConfigs.Relay(fixture.Server.Host, fixture.Server.Port);
        InstanceConfig instance = config.Instances[0] with
        {
            Auth = new AuthConfig { AuthFile = authFile },
            Pool = new PoolConfig { Mode = PoolMode.Transaction, Size = size, QueueTimeout = Deadline },
            UpstreamTls = new UpstreamTlsConfig { Mode = UpstreamTlsMode.Disable },
            Limits = config.Instances[0].Limits with { MaxConnections = 1000 },
        };
        return await ProxyHarness.StartAsync(config with { Instances = [instance] });
    }

    private static async Task<NpgsqlConnection> OpenAsync(ProxyHarness proxy)
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(proxy.ConnectionString(PostgresServer.ScramUser, PostgresServer.ScramPassword))
        {
            Pooling = false,
            Timeout = 60,
            CommandTimeout = 60,
        }.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    private static Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql) => PoolingClients.ScalarAsync<T>(connection, sql);

    private static Task ExecuteAsync(NpgsqlConnection connection, string sql) => PoolingClients.ExecuteAsync(connection, sql);
}
