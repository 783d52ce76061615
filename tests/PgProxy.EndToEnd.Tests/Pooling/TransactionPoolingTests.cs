using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Pooling;

/// <summary>
/// <c>pool.mode: transaction</c> against a real PostgreSQL: a client holds a server connection from its first message
/// to the idle ReadyForQuery, its settings and prepared statements follow it to whichever connection it gets next, and
/// what cannot follow it is refused with 0A000.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class TransactionPoolingTests(PostgresFixture fixture) : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private static readonly string[] JavaPaths = ["/usr/bin/java", "/usr/lib/jvm/default-java/bin/java"];
    private readonly string authFile = Path.Combine(Path.GetTempPath(), $"pgproxy-tx-users-{Guid.NewGuid():N}.txt");

    public Task InitializeAsync() => PoolingClients.WriteAuthFileAsync(fixture.Server, authFile);

    public Task DisposeAsync()
    {
        File.Delete(authFile);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Two_clients_share_one_connection_and_a_transaction_keeps_it_until_it_ends()
    {
        await using ProxyHarness proxy = await StartAsync(size: 1);
        await using NpgsqlConnection first = await OpenAsync(proxy, "first");
        await using NpgsqlConnection second = await OpenAsync(proxy, "second");

        int backend = await ScalarAsync<int>(first, "SELECT pg_backend_pid()");
        Assert.Equal(backend, await ScalarAsync<int>(second, "SELECT pg_backend_pid()"));

        await using NpgsqlTransaction transaction = await first.BeginTransactionAsync();
        await ExecuteAsync(first, "CREATE TEMP TABLE held_by_first (n int)");
        Task<int> waiting = ScalarAsync<int>(second, "SELECT 42");
        Assert.False(waiting.IsCompleted);

        Assert.Equal(backend, await ScalarAsync<int>(first, "SELECT pg_backend_pid()"));
        await transaction.CommitAsync();

        Assert.Equal(42, await waiting.WaitAsync(Deadline));
    }

    [Fact]
    public async Task Settings_follow_each_client_onto_a_shared_connection()
    {
        await using ProxyHarness proxy = await StartAsync(size: 1);
        await using NpgsqlConnection first = await OpenAsync(proxy, "first");
        await using NpgsqlConnection second = await OpenAsync(proxy, "second");
        string defaultZone = await ScalarAsync<string>(second, "SHOW TimeZone");
        string defaultWorkMem = await ScalarAsync<string>(second, "SHOW work_mem");

        await ExecuteAsync(first, "SET TimeZone TO 'Asia/Tokyo'");
        await ExecuteAsync(first, "SET work_mem = '7MB'");
        await ExecuteAsync(first, "SET DateStyle = 'SQL, DMY'");

        Assert.Equal(defaultZone, await ScalarAsync<string>(second, "SHOW TimeZone"));
        Assert.Equal(defaultWorkMem, await ScalarAsync<string>(second, "SHOW work_mem"));
        Assert.Equal("second", await ScalarAsync<string>(second, "SHOW application_name"));
        Assert.Equal("Asia/Tokyo", await ScalarAsync<string>(first, "SHOW TimeZone"));
        Assert.Equal("7MB", await ScalarAsync<string>(first, "SHOW work_mem"));
        Assert.Equal("SQL, DMY", await ScalarAsync<string>(first, "SHOW DateStyle"));
        Assert.Equal("first", await ScalarAsync<string>(first, "SHOW application_name"));

        // A SET in a transaction that rolls back leaves the old value, as on PostgreSQL.
        await using (NpgsqlTransaction transaction = await first.BeginTransactionAsync())
        {
            await ExecuteAsync(first, "SET work_mem = '9MB'");
            await transaction.RollbackAsync();
        }

        Assert.Equal(defaultWorkMem, await ScalarAsync<string>(second, "SHOW work_mem"));
        Assert.Equal("7MB", await ScalarAsync<string>(first, "SHOW work_mem"));

        await ExecuteAsync(first, "RESET ALL");
        Assert.Equal(defaultZone, await ScalarAsync<string>(first, "SHOW TimeZone"));
        Assert.Equal("first", await ScalarAsync<string>(first, "SHOW application_name"));
    }

    [Fact]
    public async Task Prepared_statements_of_the_same_name_stay_each_clients_own_across_connections()
    {
        await using ProxyHarness proxy = await StartAsync(size: 2);
        var clients = new List<NpgsqlConnection>();
        try
        {
            for (int i = 0; i < 6; i++)
            {
                clients.Add(await OpenAsync(proxy, $"client-{i}"));
            }

            // Npgsql names its statements _p1, _p2, ... per connection: the same names for different texts.
            var commands = new List<NpgsqlCommand>();
            for (int i = 0; i < clients.Count; i++)
            {
                var command = new NpgsqlCommand($"SELECT $1::int * {i + 1}, pg_backend_pid()", clients[i]);
                command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 0 });
                await command.PrepareAsync();
                commands.Add(command);
            }

            var backends = new HashSet<int>();
            for (int round = 1; round <= 5; round++)
            {
                Task<(int Value, int Backend)>[] runs = [.. commands.Select(async command =>
                {
                    command.Parameters[0].Value = round;
                    await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
                    await reader.ReadAsync();
                    return (reader.GetInt32(0), reader.GetInt32(1));
                })];
                (int Value, int Backend)[] results = await Task.WhenAll(runs).WaitAsync(Deadline);
                for (int i = 0; i < results.Length; i++)
                {
                    Assert.Equal(round * (i + 1), results[i].Value);
                    backends.Add(results[i].Backend);
                }
            }

            Assert.InRange(backends.Count, 1, 2);
            long onServers = await ScalarAsync<long>(clients[0], "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgproxy_%'");
            Assert.InRange(onServers, 1, 6);
        }
        finally
        {
            foreach (NpgsqlConnection client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Sql_level_prepare_is_refused_with_0A000_and_aborts_the_transaction_it_is_in()
    {
        await using ProxyHarness proxy = await StartAsync(size: 1);
        await using NpgsqlConnection connection = await OpenAsync(proxy, "sql-prepare");

        PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(connection, "PREPARE p AS SELECT 1"));
        Assert.Equal("0A000", refused.SqlState);
        Assert.Contains("transaction pooling", refused.MessageText, StringComparison.Ordinal);


        await using (NpgsqlTransaction transaction = await connection.BeginTransactionAsync())
        {
            await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(connection, "EXECUTE p"));
            PostgresException aborted = await Assert.ThrowsAsync<PostgresException>(() => ScalarAsync<int>(connection, "SELECT 1"));
            Assert.Equal("25P02", aborted.SqlState);
        }

        Assert.Equal(1, await ScalarAsync<int>(connection, "SELECT 1"));

        // Inside a transaction block the client keeps its connection: PREPARE works there, and goes with the block.
        await using (NpgsqlTransaction transaction = await connection.BeginTransactionAsync())
        {
            await ExecuteAsync(connection, "PREPARE in_block AS SELECT 11");
            Assert.Equal(11, await ScalarAsync<int>(connection, "EXECUTE in_block"));
            await transaction.CommitAsync();
        }

        PostgresException gone = await Assert.ThrowsAsync<PostgresException>(() => ScalarAsync<int>(connection, "EXECUTE in_block"));
        Assert.Equal("26000", gone.SqlState);
        Assert.Equal(0L, await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_prepared_statements WHERE name = 'in_block'"));
    }

    [Fact]
    public async Task Discard_all_and_deallocate_all_act_on_the_clients_own_statements_only()
    {
        await using ProxyHarness proxy = await StartAsync(size: 1);
        await using NpgsqlConnection keeper = await OpenAsync(proxy, "keeper");
        await using NpgsqlConnection discarder = await OpenAsync(proxy, "discarder");
        await using var kept = new NpgsqlCommand("SELECT 7", keeper);
        await kept.PrepareAsync();

        await ExecuteAsync(discarder, "SET TimeZone TO 'Asia/Tokyo'");
        await ExecuteAsync(discarder, "DEALLOCATE ALL");
        await ExecuteAsync(discarder, "DISCARD ALL");

        Assert.Equal(7, (int)(await kept.ExecuteScalarAsync())!);
        Assert.NotEqual("Asia/Tokyo", await ScalarAsync<string>(discarder, "SHOW TimeZone"));
        Assert.Equal("discarder", await ScalarAsync<string>(discarder, "SHOW application_name"));
    }

    [Fact]
    public async Task Psql_runs_a_script_with_its_start_up_options_on_shared_connections()
    {
        await using ProxyHarness proxy = await StartAsync(size: 1);
        await using NpgsqlConnection other = await OpenAsync(proxy, "other");
        await ExecuteAsync(other, "SET TimeZone TO 'Asia/Tokyo'");

        ProcessResult result = await Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.Md5User, PostgresServer.Md5Password),
            "SHOW TimeZone;\nBEGIN;\nSELECT 1;\nCOMMIT;\nSHOW DateStyle;\nSET search_path TO pg_catalog;\nSHOW search_path;\nSELECT current_user;\n",
            new PsqlOptions
            {
                Arguments = ["-At"],
                Environment = new Dictionary<string, string?> { ["PGOPTIONS"] = "-c TimeZone=America/Lima -c DateStyle=SQL,DMY", ["PGSSLMODE"] = "disable" },
            });

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Equal(["America/Lima", "BEGIN", "1", "COMMIT", "SQL, DMY", "SET", "pg_catalog", PostgresServer.Md5User], result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("Asia/Tokyo", await ScalarAsync<string>(other, "SHOW TimeZone"));
    }

    [Fact]
    public async Task A_cancel_reaches_the_clients_running_statement_and_no_other()
    {
        await using ProxyHarness proxy = await StartAsync(size: 2);
        await using NpgsqlConnection sleeper = await OpenAsync(proxy, "sleeper");
        await using NpgsqlConnection worker = await OpenAsync(proxy, "worker");
        await using var sleep = new NpgsqlCommand("SELECT pg_sleep(30)", sleeper);
        Task running = sleep.ExecuteNonQueryAsync();
        await Waiting.WaitUntilAsync(
            async () => await fixture.Server.QueryAsSuperuserAsync("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'") == "1",
            Deadline,
            "the sleep to run on the server");

        sleep.Cancel();

        OperationCanceledException cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running.WaitAsync(Deadline));
        Assert.Equal("57014", Assert.IsType<PostgresException>(cancelled.InnerException).SqlState);
        Assert.Equal(5, await ScalarAsync<int>(worker, "SELECT 5"));
        Assert.Equal(1, await ScalarAsync<int>(sleeper, "SELECT 1"));
    }

    [Fact]
    public async Task A_client_waiting_past_queue_timeout_gets_an_error_naming_the_pool()
    {
        await using ProxyHarness proxy = await StartAsync(size: 1, queueTimeout: TimeSpan.FromMilliseconds(500));
        await using NpgsqlConnection holder = await OpenAsync(proxy, "holder");
        await using NpgsqlConnection waiter = await OpenAsync(proxy, "waiter");
        await using NpgsqlTransaction transaction = await holder.BeginTransactionAsync();
        await ExecuteAsync(holder, "SELECT 1");

        Exception failed = await Assert.ThrowsAnyAsync<Exception>(() => ScalarAsync<int>(waiter, "SELECT 1"));

        PostgresException error = Assert.IsType<PostgresException>(failed is PostgresException ? failed : failed.InnerException);
        Assert.Equal("53300", error.SqlState);
        Assert.Contains("pool \"proxy\"", error.MessageText, StringComparison.Ordinal);
        await transaction.CommitAsync();
    }

    [Fact]
    public async Task A_connection_that_dies_inside_a_transaction_ends_that_client_only_and_the_pool_refills()
    {
        await using ProxyHarness proxy = await StartAsync(size: 2);
        await using NpgsqlConnection victim = await OpenAsync(proxy, "victim");
        await using NpgsqlConnection bystander = await OpenAsync(proxy, "bystander");
        await using NpgsqlTransaction transaction = await victim.BeginTransactionAsync();
        int pid = await ScalarAsync<int>(victim, "SELECT pg_backend_pid()");

        await fixture.Server.QueryAsSuperuserAsync($"SELECT pg_terminate_backend({pid})");

        Exception failed = await Assert.ThrowsAnyAsync<Exception>(() => ScalarAsync<int>(victim, "SELECT 1"));
        Assert.True(failed is PostgresException or NpgsqlException, failed.ToString());
        Assert.Equal(3, await ScalarAsync<int>(bystander, "SELECT 3"));
        await using NpgsqlConnection next = await OpenAsync(proxy, "next");
        Assert.NotEqual(pid, await ScalarAsync<int>(next, "SELECT pg_backend_pid()"));
    }

    [Fact]
    public async Task PgJdbc_prepared_statements_keep_their_names_apart_on_a_small_pool()
    {
        const string driver = "/usr/share/java/postgresql.jar";
        string? java = JavaPaths.FirstOrDefault(File.Exists);
        Assert.True(File.Exists(driver) && java is not null, $"pgJDBC needs a JDK and {driver}: apt-get install default-jdk-headless libpostgresql-jdbc-java");
        await using ProxyHarness proxy = await StartAsync(size: 2);

        ProcessResult result = await ProcessRunner.RunAsync(
            java,
            ["-cp", driver, Path.Combine(PgProxy.TestSupport.RepositoryRoot.Path, "tests", "PgProxy.EndToEnd.Tests", "Clients", "JdbcPrepared.java"),
                $"jdbc:postgresql://{proxy.Host}:{proxy.Port}/{PostgresServer.Database}?sslmode=disable", PostgresServer.ScramUser, PostgresServer.ScramPassword, "6", "30"],
            TimeSpan.FromSeconds(90));

        Assert.True(result.Succeeded, result.ToString());
        string[] words = result.StandardOutput.Trim().Split(' ');
        Assert.True(words[0] == "ok", result.StandardOutput);
        Assert.InRange(int.Parse(words[2], System.Globalization.CultureInfo.InvariantCulture), 1, 2);
    }

    [Fact]
    public async Task Pause_waits_for_the_open_transaction_holds_new_ones_and_resume_lets_them_go()
    {
        using Admin.ConsoleSetup console = Admin.ConsoleSetup.Create();
        ProxyConfig config = TestConfigs.Relay(fixture.Server.Host, fixture.Server.Port) with { Admin = console.Admin() };
        InstanceConfig instance = config.Instances[0] with
        {
            Auth = new AuthConfig { AuthFile = authFile },
            Pool = new PoolConfig { Mode = PoolMode.Transaction, Size = 2, QueueTimeout = Deadline },
            UpstreamTls = new UpstreamTlsConfig { Mode = UpstreamTlsMode.Disable },
        };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config with { Instances = [instance] });
        await using NpgsqlConnection busy = await OpenAsync(proxy, "busy");
        await using NpgsqlConnection later = await OpenAsync(proxy, "later");
        await using var admin = new NpgsqlConnection(Admin.ConsoleSetup.ConnectionString(proxy));
        await admin.OpenAsync();
        NpgsqlTransaction transaction = await busy.BeginTransactionAsync();
        int before = await ScalarAsync<int>(busy, "SELECT pg_backend_pid()");

        Task pausing = ExecuteAsync(admin, "PAUSE proxy");
        await Waiting.WaitUntilAsync(() => Task.FromResult(proxy.Server.Configuration.Pools.All(pools => pools.Paused)), Deadline, "the pause to reach the pools");
        Task<int> held = ScalarAsync<int>(later, "SELECT 5");
        Assert.False(pausing.IsCompleted);
        Assert.Equal(before, await ScalarAsync<int>(busy, "SELECT pg_backend_pid()"));
        await transaction.CommitAsync();
        await pausing.WaitAsync(Deadline);

        Assert.False(held.IsCompleted);
        Assert.Equal("0", await fixture.Server.QueryAsSuperuserAsync($"SELECT count(*) FROM pg_stat_activity WHERE pid = {before}"));
        await ExecuteAsync(admin, "RESUME");
        Assert.Equal(5, await held.WaitAsync(Deadline));
        await ExecuteAsync(admin, "RECONNECT proxy");
        Assert.Equal(6, await ScalarAsync<int>(busy, "SELECT 6"));
    }

    [Fact]
    public async Task Rules_and_masks_work_on_shared_connections_and_shared_prepared_statements()
    {
        await fixture.Server.QueryAsSuperuserAsync("""
            DROP TABLE IF EXISTS tx_masked;
            CREATE TABLE tx_masked (id int PRIMARY KEY, email text);
            INSERT INTO tx_masked VALUES (1, 'alice@example.com'), (2, 'bob@example.org');
            GRANT SELECT ON tx_masked TO PUBLIC;
            """);
        ProxyConfig parsed = ConfigLoader.Parse(
            $$"""
            instances:
              - listen: {name: proxy, host: 127.0.0.1, port: 0}
                redirect: {name: postgresql, host: {{fixture.Server.Host}}, port: {{fixture.Server.Port}}, tls: {mode: disable} }
                auth: {auth-file: {{authFile}} }
                pool: {mode: transaction, size: 1}
                rules:
                  - name: no-ddl
                    match: {statement: [ddl]}
                    refuse: {sqlstate: '42501', message: 'DDL is not allowed through this port'}
                  - name: tag-it
                    match: {query: 'FROM tx_masked'}
                    tag: 'source=tx'
                    continue: true
                masks:
                  - name: emails
                    columns: [public.tx_masked.email]
                    with: email
            """,
            Path.GetTempPath(),
            "tx-rules.yml");
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(parsed);
        await using NpgsqlConnection first = await OpenAsync(proxy, "first");
        await using NpgsqlConnection second = await OpenAsync(proxy, "second");

        PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(first, "CREATE TABLE tx_refused (n int)"));
        Assert.Equal("42501", refused.SqlState);

        // The same statement prepared by both clients: one copy on the one server connection, masked for each.
        foreach (NpgsqlConnection connection in new[] { first, second, first })
        {
            await using var command = new NpgsqlCommand("SELECT email FROM tx_masked WHERE id = $1", connection);
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 2 });
            await command.PrepareAsync();
            for (int i = 0; i < 3; i++)
            {
                Assert.Equal("b***@example.org", (string)(await command.ExecuteScalarAsync())!);
            }
        }

        Assert.Equal("a***@example.com", await ScalarAsync<string>(second, "SELECT email FROM tx_masked WHERE id = 1"));
    }

    [Fact]
    public async Task What_lives_in_the_server_session_stays_on_the_connection_as_documented()
    {
        // docs/pooling.md, "What does not follow a client": each of these is seen by the next client of the connection.
        await using ProxyHarness proxy = await StartAsync(size: 1);
        await using NpgsqlConnection first = await OpenAsync(proxy, "first");
        await using NpgsqlConnection second = await OpenAsync(proxy, "second");
        string defaultWorkMem = await ScalarAsync<string>(second, "SHOW work_mem");

        await ExecuteAsync(first, "CREATE TEMP TABLE tx_left_behind (n int)");
        await ExecuteAsync(first, "SELECT pg_advisory_lock(4242)");
        await using (NpgsqlTransaction transaction = await first.BeginTransactionAsync())
        {
            await ExecuteAsync(first, "DECLARE tx_held CURSOR WITH HOLD FOR SELECT 99");
            await transaction.CommitAsync();
        }

        await fixture.Server.QueryAsSuperuserAsync("CREATE OR REPLACE FUNCTION public.tx_sets_work_mem() RETURNS void LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('work_mem', '3MB', false); END$$");
        await ExecuteAsync(first, "SELECT public.tx_sets_work_mem()");

        Assert.Equal("tx_left_behind", await ScalarAsync<string>(second, "SELECT to_regclass('pg_temp.tx_left_behind')::text"));
        Assert.True(await ScalarAsync<bool>(second, "SELECT pg_try_advisory_lock(4242)")); // the same server session holds it
        Assert.Equal(99, await ScalarAsync<int>(second, "FETCH tx_held"));
        Assert.NotEqual(defaultWorkMem, await ScalarAsync<string>(second, "SHOW work_mem"));

        await ExecuteAsync(second, "CLOSE tx_held; SELECT pg_advisory_unlock_all(); DROP TABLE tx_left_behind; RESET work_mem");
    }

    private async Task<ProxyHarness> StartAsync(int size, TimeSpan? queueTimeout = null)
    {
        ProxyConfig config = TestConfigs.Relay(fixture.Server.Host, fixture.Server.Port);
        InstanceConfig instance = config.Instances[0] with
        {
            Auth = new AuthConfig { AuthFile = authFile },
            Pool = new PoolConfig { Mode = PoolMode.Transaction, Size = size, QueueTimeout = queueTimeout ?? Deadline },
            UpstreamTls = new UpstreamTlsConfig { Mode = UpstreamTlsMode.Disable },
        };
        return await ProxyHarness.StartAsync(config with { Instances = [instance] });
    }

    private static async Task<NpgsqlConnection> OpenAsync(ProxyHarness proxy, string applicationName)
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(proxy.ConnectionString(PostgresServer.ScramUser, PostgresServer.ScramPassword))
        {
            ApplicationName = applicationName,
            Pooling = false,
        }.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    private static Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql) => PoolingClients.ScalarAsync<T>(connection, sql);

    private static Task ExecuteAsync(NpgsqlConnection connection, string sql) => PoolingClients.ExecuteAsync(connection, sql);
}
