using System.Collections.Concurrent;
using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Pooling;

/// <summary>
/// LISTEN/NOTIFY in <c>pool.mode: transaction</c> against a real PostgreSQL: PgProxy's one listening connection of the
/// database listens for every client, and each notification reaches the clients listening on its channel, between
/// their transactions, and no other client.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class TransactionPoolingNotifyTests(PostgresFixture fixture) : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private static readonly string[] JavaPaths = ["/usr/bin/java", "/usr/lib/jvm/default-java/bin/java"];
    private readonly string authFile = Path.Combine(Path.GetTempPath(), $"pgproxy-notify-users-{Guid.NewGuid():N}.txt");
    private readonly string channel = $"orders_{Guid.NewGuid():N}";

    public Task InitializeAsync() => PoolingClients.WriteAuthFileAsync(fixture.Server, authFile);

    public Task DisposeAsync()
    {
        File.Delete(authFile);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Notifications_reach_every_listening_client_and_no_other_through_one_listening_connection()
    {
        await using ProxyHarness proxy = await StartAsync(size: 1);
        await using Listener first = await Listener.OpenAsync(proxy, "first");
        await using Listener second = await Listener.OpenAsync(proxy, "second");
        await using Listener bystander = await Listener.OpenAsync(proxy, "bystander");
        await using NpgsqlConnection notifier = await OpenAsync(proxy, "notifier");

        await PoolingClients.ExecuteAsync(first.Connection, $"LISTEN {channel}");
        await PoolingClients.ExecuteAsync(second.Connection, $"LISTEN {channel}");

        // Two clients listen, and the server has one listening backend for them, besides the pool of one.
        Assert.Equal("1", await fixture.Server.QueryAsSuperuserAsync($"SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN \"{channel}\"'"));

        await PoolingClients.ExecuteAsync(notifier, $"NOTIFY {channel}, 'one'");
        Assert.Equal("one", await first.NextAsync());
        Assert.Equal("one", await second.NextAsync());

        // Anything sent to the bystander would come before the answer to its next statement.
        Assert.Equal(1, await PoolingClients.ScalarAsync<int>(bystander.Connection, "SELECT 1"));
        Assert.Empty(bystander.Received);

        await PoolingClients.ExecuteAsync(first.Connection, $"UNLISTEN {channel}");
        await PoolingClients.ExecuteAsync(notifier, $"SELECT pg_notify('{channel}', 'two')");
        Assert.Equal("two", await second.NextAsync());
        Assert.Equal(1, await PoolingClients.ScalarAsync<int>(first.Connection, "SELECT 1"));
        Assert.Empty(first.Received);

        // The last listener gone, the listening connection goes too.
        await second.Connection.CloseAsync();
        await Waiting.WaitUntilAsync(
            async () => await fixture.Server.QueryAsSuperuserAsync($"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%LISTEN \"{channel}\"'") == "0",
            Deadline,
            "the listening connection to close");
    }

    [Fact]
    public async Task A_notification_waits_for_the_listener_s_transaction_to_end()
    {
        await using ProxyHarness proxy = await StartAsync(size: 2);
        await using Listener inTransaction = await Listener.OpenAsync(proxy, "in-transaction");
        await using Listener witness = await Listener.OpenAsync(proxy, "witness");
        await using NpgsqlConnection notifier = await OpenAsync(proxy, "notifier");
        await PoolingClients.ExecuteAsync(inTransaction.Connection, $"LISTEN {channel}");
        await PoolingClients.ExecuteAsync(witness.Connection, $"LISTEN {channel}");

        await using (NpgsqlTransaction transaction = await inTransaction.Connection.BeginTransactionAsync())
        {
            Assert.Equal(1, await PoolingClients.ScalarAsync<int>(inTransaction.Connection, "SELECT 1"));
            await PoolingClients.ExecuteAsync(notifier, $"NOTIFY {channel}, 'later'");

            // The witness has it, so PgProxy has it for both: the one in a transaction gets it only after.
            Assert.Equal("later", await witness.NextAsync());
            Assert.Equal(2, await PoolingClients.ScalarAsync<int>(inTransaction.Connection, "SELECT 2"));
            Assert.Empty(inTransaction.Received);
            await transaction.CommitAsync();
        }

        Assert.Equal("later", await inTransaction.NextAsync());
    }

    [Fact]
    public async Task Discard_all_stops_listening()
    {
        await using ProxyHarness proxy = await StartAsync(size: 1);
        await using Listener listener = await Listener.OpenAsync(proxy, "discarding");
        await using Listener witness = await Listener.OpenAsync(proxy, "witness");
        await using NpgsqlConnection notifier = await OpenAsync(proxy, "notifier");
        await PoolingClients.ExecuteAsync(listener.Connection, $"LISTEN {channel}");
        await PoolingClients.ExecuteAsync(witness.Connection, $"LISTEN {channel}");

        await PoolingClients.ExecuteAsync(listener.Connection, "DISCARD ALL");
        await PoolingClients.ExecuteAsync(notifier, $"NOTIFY {channel}, 'after discard'");
        Assert.Equal("after discard", await witness.NextAsync());
        Assert.Equal(1, await PoolingClients.ScalarAsync<int>(listener.Connection, "SELECT 1"));
        Assert.Empty(listener.Received);

    }

    [Fact]
    public async Task Psql_s_simple_query_gets_the_LISTEN_tag_and_LISTEN_among_other_statements_is_refused_with_0A000()
    {
        await using ProxyHarness proxy = await StartAsync(size: 1);

        ProcessResult alone = await RunPsqlAsync(proxy, $"LISTEN {channel}");
        Assert.True(alone.ExitCode == 0, alone.StandardError);
        Assert.Equal("LISTEN", alone.StandardOutput.Trim());

        ProcessResult mixed = await RunPsqlAsync(proxy, $"LISTEN {channel}; SELECT 1");
        Assert.NotEqual(0, mixed.ExitCode);
        Assert.Contains("0A000", mixed.StandardError, StringComparison.Ordinal);
        Assert.Contains("LISTEN and UNLISTEN must be sent without other statements", mixed.StandardError, StringComparison.Ordinal);
    }

    /// <summary>One simple Query (psql's <c>-c</c> sends its text as one), with the SQLSTATE in any error.</summary>
    private static Task<ProcessResult> RunPsqlAsync(ProxyHarness proxy, string sql) => Psql.RunAsync(
        proxy.PsqlTarget(PostgresServer.Md5User, PostgresServer.Md5Password),
        "",
        new PsqlOptions
        {
            Arguments = ["-v", "VERBOSITY=verbose", "-c", sql],
            Environment = new Dictionary<string, string?> { ["PGSSLMODE"] = "disable" },
        });

    [Fact]
    public async Task With_prepared_statements_off_a_listen_sent_as_a_parse_is_still_done_for_the_client()
    {
        await using ProxyHarness proxy = await StartAsync(size: 1, preparedStatements: 0);
        await using Listener listener = await Listener.OpenAsync(proxy, "unmapped");
        await using NpgsqlConnection notifier = await OpenAsync(proxy, "notifier");

        await PoolingClients.ExecuteAsync(listener.Connection, $"LISTEN {channel}");
        await PoolingClients.ExecuteAsync(notifier, $"NOTIFY {channel}, 'unmapped'");

        Assert.Equal("unmapped", await listener.NextAsync());
    }

    [Fact]
    public async Task PgJdbc_receives_its_notifications_in_order()
    {
        const string driver = "/usr/share/java/postgresql.jar";
        string? java = JavaPaths.FirstOrDefault(File.Exists);
        Assert.True(File.Exists(driver) && java is not null, $"pgJDBC needs a JDK and {driver}: apt-get install default-jdk-headless libpostgresql-jdbc-java");
        await using ProxyHarness proxy = await StartAsync(size: 1);

        ProcessResult result = await ProcessRunner.RunAsync(
            java,
            ["-cp", driver, Path.Combine(PgProxy.TestSupport.RepositoryRoot.Path, "tests", "PgProxy.EndToEnd.Tests", "Clients", "JdbcListen.java"),
                $"jdbc:postgresql://{proxy.Host}:{proxy.Port}/{PostgresServer.Database}?sslmode=disable", PostgresServer.ScramUser, PostgresServer.ScramPassword, channel, "25"],
            TimeSpan.FromSeconds(90));

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal("ok 25", result.StandardOutput.Trim());
    }

    private async Task<ProxyHarness> StartAsync(int size, int preparedStatements = 1000)
    {
        ProxyConfig config = TestConfigs.Relay(fixture.Server.Host, fixture.Server.Port);
        InstanceConfig instance = config.Instances[0] with
        {
            Auth = new AuthConfig { AuthFile = authFile },
            Pool = new PoolConfig { Mode = PoolMode.Transaction, Size = size, QueueTimeout = Deadline, PreparedStatements = preparedStatements },
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

    /// <summary>An Npgsql connection that keeps the payloads of the notifications it receives.</summary>
    private sealed class Listener : IAsyncDisposable
    {
        private readonly ConcurrentQueue<string> received = new();
        private int taken;

        private Listener(NpgsqlConnection connection)
        {
            Connection = connection;
            connection.Notification += (_, e) => received.Enqueue(e.Payload);
        }

        public NpgsqlConnection Connection { get; }

        /// <summary>What arrived and was not taken by <see cref="NextAsync"/>.</summary>
        public IReadOnlyCollection<string> Received => [.. received.Skip(taken)];

        public static async Task<Listener> OpenAsync(ProxyHarness proxy, string applicationName) =>
            new(await TransactionPoolingNotifyTests.OpenAsync(proxy, applicationName));

        /// <summary>The next notification's payload, waiting for it with the connection idle.</summary>
        public async Task<string> NextAsync()
        {
            using var deadline = new CancellationTokenSource(Deadline);
            while (received.Count <= taken)
            {
                await Connection.WaitAsync(deadline.Token);
            }

            return received.ElementAt(taken++);
        }

        public ValueTask DisposeAsync() => Connection.DisposeAsync();
    }
}
