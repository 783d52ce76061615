using Npgsql;
using PgProxy.Core.Admin;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Pooling;

/// <summary>
/// <c>pool.mode: session</c> against a real PostgreSQL, with Npgsql and psql: PgProxy logs clients in itself from the
/// auth-file's verifiers, lends each a server connection for its session, sets the client's own start-up parameters on
/// it, resets it with the reset query when the client leaves, and reuses it for the next client.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class SessionPoolingTests(PostgresFixture fixture) : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private static readonly string[] JavaPaths = ["/usr/bin/java", "/usr/lib/jvm/default-java/bin/java"];
    private readonly string authFile = Path.Combine(Path.GetTempPath(), $"pgproxy-pool-users-{Guid.NewGuid():N}.txt");

    public Task InitializeAsync() => PoolingClients.WriteAuthFileAsync(fixture.Server, authFile);

    public Task DisposeAsync()
    {
        File.Delete(authFile);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_client_that_leaves_gives_its_server_connection_to_the_next_reset_and_with_its_own_parameters()
    {
        await using ProxyHarness proxy = await StartAsync(new PoolConfig { Mode = PoolMode.Session, Size = 1 });

        int firstBackend;
        await using (var first = new NpgsqlConnection(ConnectionString(proxy, "first-client")))
        {
            await first.OpenAsync();
            firstBackend = await ScalarAsync<int>(first, "SELECT pg_backend_pid()");
            await ExecuteAsync(first, "CREATE TEMP TABLE pooled_leftover (n int); SET TimeZone TO 'Asia/Tokyo'; PREPARE leftover AS SELECT 1");
            Assert.Equal("first-client", await ScalarAsync<string>(first, "SHOW application_name"));
        }

        await using var second = new NpgsqlConnection(ConnectionString(proxy, "second-client"));
        await second.OpenAsync();

        Assert.Equal(firstBackend, await ScalarAsync<int>(second, "SELECT pg_backend_pid()"));
        Assert.Equal("second-client", await ScalarAsync<string>(second, "SHOW application_name"));
        Assert.Equal(0L, await ScalarAsync<long>(second, "SELECT count(*) FROM pg_prepared_statements"));
        Assert.Null(await ScalarAsync<object?>(second, "SELECT to_regclass('pg_temp.pooled_leftover')::text"));
        Assert.NotEqual("Asia/Tokyo", await ScalarAsync<string>(second, "SHOW TimeZone"));
    }

    [Fact]
    public async Task Psql_logs_in_with_md5_and_its_options_are_set_on_the_pooled_connection()
    {
        await using ProxyHarness proxy = await StartAsync(new PoolConfig { Mode = PoolMode.Session, Size = 2 });

        ProcessResult result = await Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.Md5User, PostgresServer.Md5Password),
            "SHOW TimeZone;\nSHOW DateStyle;\nSELECT current_user;\n",
            new PsqlOptions
            {
                Arguments = ["-At"],
                Environment = new Dictionary<string, string?> { ["PGOPTIONS"] = "-c TimeZone=America/Lima -c DateStyle=SQL,DMY", ["PGSSLMODE"] = "disable" },
            });

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Equal(["America/Lima", "SQL, DMY", PostgresServer.Md5User], result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task A_wrong_password_is_refused_by_PgProxy_in_PostgreSQLs_words()
    {
        await using ProxyHarness proxy = await StartAsync(new PoolConfig { Mode = PoolMode.Session });
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.ScramUser, "not-the-password"));

        PostgresException error = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());

        Assert.Equal(("28P01", $"password authentication failed for user \"{PostgresServer.ScramUser}\""), (error.SqlState, error.MessageText));
    }

    [Fact]
    public async Task A_client_that_waits_past_queue_timeout_gets_an_error_naming_the_pool()
    {
        await using ProxyHarness proxy = await StartAsync(new PoolConfig { Mode = PoolMode.Session, Size = 1, QueueTimeout = TimeSpan.FromMilliseconds(500) });
        await using var holder = new NpgsqlConnection(ConnectionString(proxy, "holder"));
        await holder.OpenAsync();

        await using var waiter = new NpgsqlConnection(ConnectionString(proxy, "waiter"));
        PostgresException error = await Assert.ThrowsAsync<PostgresException>(() => waiter.OpenAsync());

        Assert.Equal("53300", error.SqlState);
        Assert.Contains($"pool \"proxy\" for user \"{PostgresServer.ScramUser}\", database \"{PostgresServer.Database}\"", error.MessageText, StringComparison.Ordinal);
        Assert.Equal(1, await ScalarAsync<int>(holder, "SELECT 1")); // the holder is unharmed

        // The console's view of the same pool: one client holding its only connection, nobody waiting now.
        IReadOnlyList<PoolView> pools = ((IConsoleHost)proxy.Server).Pools();
        PoolView pool = Assert.Single(pools);
        Assert.Equal(("proxy", PostgresServer.ScramUser, 1, 0, 1, 0), (pool.Instance, pool.User, pool.Counts.Active, pool.Counts.Waiting, pool.Counts.Opened, pool.Counts.Idle));
    }

    [Fact]
    public async Task A_client_that_leaves_inside_a_transaction_does_not_pass_its_connection_on()
    {
        await using ProxyHarness proxy = await StartAsync(new PoolConfig { Mode = PoolMode.Session, Size = 1 });
        int abandoned;
        await using (var first = new NpgsqlConnection(ConnectionString(proxy, "abandons")))
        {
            await first.OpenAsync();
            abandoned = await ScalarAsync<int>(first, "SELECT pg_backend_pid()");
            await ExecuteAsync(first, "BEGIN; CREATE TEMP TABLE half_done (n int)");
        }

        await using var second = new NpgsqlConnection(ConnectionString(proxy, "next"));
        await second.OpenAsync();

        Assert.NotEqual(abandoned, await ScalarAsync<int>(second, "SELECT pg_backend_pid()"));
        Assert.Equal("off", await ScalarAsync<string>(second, "SELECT CASE WHEN txid_current_if_assigned() IS NULL THEN 'off' ELSE 'on' END"));
    }

    [Fact]
    public async Task An_idle_connection_the_server_ends_is_replaced_without_the_next_client_noticing()
    {
        await using ProxyHarness proxy = await StartAsync(new PoolConfig { Mode = PoolMode.Session, Size = 1 });
        int ended;
        await using (var first = new NpgsqlConnection(ConnectionString(proxy, "before-termination")))
        {
            await first.OpenAsync();
            ended = await ScalarAsync<int>(first, "SELECT pg_backend_pid()");
        }

        Assert.Equal("t", await fixture.Server.QueryAsSuperuserAsync($"SELECT pg_terminate_backend({ended})"));
        await using var next = new NpgsqlConnection(ConnectionString(proxy, "after-termination"));
        await next.OpenAsync();

        Assert.NotEqual(ended, await ScalarAsync<int>(next, "SELECT pg_backend_pid()"));
    }

    [Fact]
    public async Task A_cancel_with_the_clients_own_key_reaches_its_pooled_connection()
    {
        await using ProxyHarness proxy = await StartAsync(new PoolConfig { Mode = PoolMode.Session, Size = 2 });
        await using var connection = new NpgsqlConnection(ConnectionString(proxy, "cancels"));
        await connection.OpenAsync();
        int serverBackend = await ScalarAsync<int>(connection, "SELECT pg_backend_pid()");

        // The client's BackendKeyData is PgProxy's own, not the server's.
        Assert.NotEqual(serverBackend, connection.ProcessID);
        await using var sleep = new NpgsqlCommand("SELECT pg_sleep(60)", connection);
        Task running = sleep.ExecuteNonQueryAsync();
        await Waiting.WaitUntilAsync(
            async () => await fixture.Server.QueryAsSuperuserAsync($"SELECT count(*) FROM pg_stat_activity WHERE pid = {serverBackend} AND query LIKE 'SELECT pg_sleep%' AND state = 'active'") == "1",
            Deadline,
            "the statement running on the pooled connection");
        sleep.Cancel();

        // Npgsql reports a cancelled command as OperationCanceledException, with the server's 57014 inside.
        OperationCanceledException cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running.WaitAsync(Deadline));
        Assert.Equal("57014", Assert.IsType<PostgresException>(cancelled.InnerException).SqlState);
        Assert.Equal(1, await ScalarAsync<int>(connection, "SELECT 1"));
    }

    [Fact]
    public async Task PgJdbc_logs_in_and_its_start_up_settings_are_accepted()
    {
        // pgJDBC sends extra_float_digits, DateStyle, TimeZone, client_encoding and application_name at start-up.
        const string driver = "/usr/share/java/postgresql.jar";
        string? java = JavaPaths.FirstOrDefault(File.Exists);
        Assert.True(File.Exists(driver) && java is not null, $"pgJDBC needs a JDK and {driver}: apt-get install default-jdk-headless libpostgresql-jdbc-java");
        await using ProxyHarness proxy = await StartAsync(new PoolConfig { Mode = PoolMode.Session, Size = 2 });

        ProcessResult result = await ProcessRunner.RunAsync(
            java,
            ["-cp", driver, Path.Combine(PgProxy.TestSupport.RepositoryRoot.Path, "tests", "PgProxy.EndToEnd.Tests", "Clients", "JdbcLogin.java"),
                $"jdbc:postgresql://{proxy.Host}:{proxy.Port}/{PostgresServer.Database}?sslmode=disable", PostgresServer.ScramUser, PostgresServer.ScramPassword],
            TimeSpan.FromSeconds(60));

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal($"{PostgresServer.ScramUser}|f", result.StandardOutput.Trim());
    }

    [Fact]
    public async Task Rules_apply_to_a_pooled_session()
    {
        ProxyConfig parsed = ConfigLoader.Parse(
            $$"""
            instances:
              - listen: {name: proxy, host: 127.0.0.1, port: 0}
                redirect: {name: postgresql, host: {{fixture.Server.Host}}, port: {{fixture.Server.Port}}, tls: {mode: disable} }
                auth: {auth-file: {{authFile}} }
                pool: {mode: session, size: 1}
                rules:
                  - name: no-ddl
                    match: {statement: [ddl]}
                    refuse: {sqlstate: '42501', message: 'DDL is not allowed through this port'}
            """,
            Path.GetTempPath(),
            "pooled-rules.yml");
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(parsed);
        await using var connection = new NpgsqlConnection(ConnectionString(proxy, "pooled-rules"));
        await connection.OpenAsync();

        PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(connection, "CREATE TEMP TABLE refused_here (n int)"));

        Assert.Equal(("42501", "DDL is not allowed through this port"), (refused.SqlState, refused.MessageText));
        Assert.Equal(1, await ScalarAsync<int>(connection, "SELECT 1"));
    }

    private async Task<ProxyHarness> StartAsync(PoolConfig pool)
    {
        ProxyConfig config = TestConfigs.Relay(fixture.Server.Host, fixture.Server.Port);
        InstanceConfig instance = config.Instances[0] with
        {
            Auth = new AuthConfig { AuthFile = authFile },
            Pool = pool,
            UpstreamTls = new UpstreamTlsConfig { Mode = UpstreamTlsMode.Disable },
        };
        return await ProxyHarness.StartAsync(config with { Instances = [instance] });
    }

    private static string ConnectionString(ProxyHarness proxy, string applicationName) =>
        new NpgsqlConnectionStringBuilder(proxy.ConnectionString(PostgresServer.ScramUser, PostgresServer.ScramPassword)) { ApplicationName = applicationName }.ConnectionString;

    private static Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql) => PoolingClients.ScalarAsync<T>(connection, sql);

    private static Task ExecuteAsync(NpgsqlConnection connection, string sql) => PoolingClients.ExecuteAsync(connection, sql);
}
