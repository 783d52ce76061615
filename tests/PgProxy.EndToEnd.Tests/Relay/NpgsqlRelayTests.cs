using System.Text;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Relay;

/// <summary>
/// The query protocols through the proxy, as real clients speak them: simple and extended, prepared statements,
/// pipelined batches, binary formats, and the asynchronous messages (notifications, notices, parameter status).
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class NpgsqlRelayTests(PostgresFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task A_multi_statement_simple_query_gets_every_result_in_order()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);

        await client.SendAsync(RawPgClient.Query(
            "CREATE TEMP TABLE simple_multi (n int); INSERT INTO simple_multi SELECT generate_series(1, 3); SELECT sum(n) FROM simple_multi; DROP TABLE simple_multi"));
        List<RawMessage> messages = await client.ReadUntilReadyAsync();

        string[] tags = messages.Where(m => m.Code == 'C').Select(m => Encoding.UTF8.GetString(m.Body).TrimEnd('\0')).ToArray();
        Assert.Equal(["CREATE TABLE", "INSERT 0 3", "SELECT 1", "DROP TABLE"], tags);
        RawMessage row = Assert.Single(messages, m => m.Code == 'D');
        Assert.EndsWith("6", Encoding.UTF8.GetString(row.Body), StringComparison.Ordinal);
        Assert.Equal((byte)'I', messages[^1].Body[0]);
    }

    [Fact]
    public async Task A_multi_statement_command_text_returns_each_result_set()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT 1; SELECT 'two'; SELECT 3::bigint", connection);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();

        var values = new List<object>();
        do
        {
            while (await reader.ReadAsync())
            {
                values.Add(reader.GetValue(0));
            }
        }
        while (await reader.NextResultAsync());

        Assert.Equal([1, "two", 3L], values);
    }

    [Fact]
    public async Task Extended_protocol_parameters_reach_the_server_and_come_back()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.ScramUser, PostgresServer.ScramPassword));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT @a + @b, upper(@s), @missing IS NULL", connection);
        command.Parameters.AddWithValue("a", 40);
        command.Parameters.AddWithValue("b", 2);
        command.Parameters.AddWithValue("s", "relayed");
        command.Parameters.AddWithValue("missing", NpgsqlDbType.Integer, DBNull.Value);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();

        Assert.True(await reader.ReadAsync());
        Assert.Equal(42, reader.GetInt32(0));
        Assert.Equal("RELAYED", reader.GetString(1));
        Assert.True(reader.GetBoolean(2));
        Assert.False(await reader.ReadAsync());
    }

    [Fact]
    public async Task A_prepared_statement_runs_many_times_with_new_parameters()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.Md5User, PostgresServer.Md5Password));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT @n * @n", connection);
        var n = new NpgsqlParameter<long>("n", NpgsqlDbType.Bigint);
        command.Parameters.Add(n);
        await command.PrepareAsync();
        Assert.True(command.IsPrepared);

        for (long i = 1; i <= 200; i++)
        {
            n.TypedValue = i;
            Assert.Equal(i * i, await command.ExecuteScalarAsync());
        }

        await using var statements = new NpgsqlCommand("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1 * $1'", connection);
        Assert.Equal(1L, await statements.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_pipelined_batch_returns_every_result()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using var batch = new NpgsqlBatch(connection);
        for (int i = 0; i < 50; i++)
        {
            var command = new NpgsqlBatchCommand("SELECT $1::int * 10");
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = i });
            batch.BatchCommands.Add(command);
        }

        await using NpgsqlDataReader reader = await batch.ExecuteReaderAsync();
        var results = new List<int>();
        do
        {
            while (await reader.ReadAsync())
            {
                results.Add(reader.GetInt32(0));
            }
        }
        while (await reader.NextResultAsync());

        Assert.Equal(Enumerable.Range(0, 50).Select(i => i * 10), results);
    }

    [Fact]
    public async Task An_error_in_the_middle_of_a_batch_fails_it_with_the_server_sqlstate_and_the_connection_stays_usable()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using (var create = new NpgsqlCommand("CREATE TEMP TABLE batch_target (n int)", connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("INSERT INTO batch_target VALUES (1)"),
                new NpgsqlBatchCommand("SELECT 1 / 0"),
                new NpgsqlBatchCommand("INSERT INTO batch_target VALUES (2)"),
            },
        };
        PostgresException error = await Assert.ThrowsAsync<PostgresException>(() => batch.ExecuteNonQueryAsync());
        Assert.Equal(PostgresErrorCodes.DivisionByZero, error.SqlState);

        // The batch ran as one implicit transaction: the insert before the error is rolled back, the one after never ran.
        await using var count = new NpgsqlCommand("SELECT count(*) FROM batch_target", connection);
        Assert.Equal(0L, await count.ExecuteScalarAsync());
        await using var after = new NpgsqlCommand("SELECT 'still usable'", connection);
        Assert.Equal("still usable", await after.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Binary_values_of_many_types_round_trip_as_they_do_directly()
    {
        const string Sql = """
            SELECT @i::int, @b::bigint, @num::numeric, @t::text, @bytes::bytea, @ts::timestamptz, @u::uuid,
                   @ints::int[], @texts::text[], @j::jsonb, @d::double precision, @flag::boolean,
                   '-1234567890123456789.123456789'::numeric, '2001-02-03 04:05:06.789+02'::timestamptz,
                   '{{1,2},{3,4}}'::int[], '{"nested": {"list": [1, "two", null]}}'::jsonb
            """;
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        object[] expected =
        [
            int.MinValue, long.MaxValue, 98765432109876.54321m, "héllo, wörld ✓", Enumerable.Range(0, 256).Select(i => (byte)i).ToArray(),
            new DateTime(2024, 2, 29, 23, 59, 59, 123, DateTimeKind.Utc), Guid.NewGuid(), new[] { 1, -2, 3 },
            new[] { "a", "b c", "" }, """{"k": [1, 2, {"x": null}]}""", Math.PI, true,
        ];

        object[] direct = await ReadRowAsync(fixture.Server.ConnectionString(PostgresServer.TrustUser), Sql, expected);
        object[] proxied = await ReadRowAsync(proxy.ConnectionString(PostgresServer.TrustUser), Sql, expected);

        Assert.Equal(direct.Length, proxied.Length);
        for (int i = 0; i < direct.Length; i++)
        {
            Assert.Equal(direct[i], proxied[i]);
        }

        for (int i = 0; i < expected.Length; i++)
        {
            object value = proxied[i];
            if (i == 9)
            {
                // jsonb comes back normalized; compare the documents.
                Assert.Equal(JsonSerializer.Serialize(JsonDocument.Parse((string)expected[i])), JsonSerializer.Serialize(JsonDocument.Parse((string)value)));
            }
            else
            {
                Assert.Equal(expected[i], value);
            }
        }
    }

    private static async Task<object[]> ReadRowAsync(string connectionString, string sql, object[] parameters)
    {
        string[] names = ["i", "b", "num", "t", "bytes", "ts", "u", "ints", "texts", "j", "d", "flag"];
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        for (int i = 0; i < names.Length; i++)
        {
            command.Parameters.AddWithValue(names[i], parameters[i]);
        }

        command.Parameters["j"].NpgsqlDbType = NpgsqlDbType.Jsonb;

        // Prepared statements make Npgsql ask for every column in binary.
        await command.PrepareAsync();
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        var row = new object[reader.FieldCount];
        reader.GetValues(row);
        return row;
    }

    [Fact]
    public async Task A_notification_crosses_from_one_proxied_connection_to_another_with_its_payload()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var listener = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await using var notifier = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.Md5User, PostgresServer.Md5Password));
        await listener.OpenAsync();
        await notifier.OpenAsync();
        string channel = "relay_" + Guid.NewGuid().ToString("N");
        var received = new List<NpgsqlNotificationEventArgs>();
        listener.Notification += (_, e) => received.Add(e);
        await using (var listen = new NpgsqlCommand($"LISTEN {channel}", listener))
        {
            await listen.ExecuteNonQueryAsync();
        }

        await using (var notify = new NpgsqlCommand("SELECT pg_notify(@channel, @payload)", notifier))
        {
            notify.Parameters.AddWithValue("channel", channel);
            notify.Parameters.AddWithValue("payload", "payload ✓ 42");
            await notify.ExecuteNonQueryAsync();
        }

        using var deadline = new CancellationTokenSource(Deadline);
        await listener.WaitAsync(deadline.Token);

        NpgsqlNotificationEventArgs notification = Assert.Single(received);
        Assert.Equal(channel, notification.Channel);
        Assert.Equal("payload ✓ 42", notification.Payload);
        Assert.Equal(notifier.ProcessID, notification.PID);
    }

    [Fact]
    public async Task A_notice_raised_by_the_server_reaches_the_client()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        var notices = new List<PostgresNotice>();
        connection.Notice += (_, e) => notices.Add(e.Notice);
        await using var command = new NpgsqlCommand("DO $$ BEGIN RAISE NOTICE 'first %', 1; RAISE WARNING 'second %', 2; END $$", connection);
        await command.ExecuteNonQueryAsync();

        Assert.Collection(
            notices,
            n => Assert.Equal(("NOTICE", "first 1"), (n.Severity, n.MessageText)),
            n => Assert.Equal(("WARNING", "second 2"), (n.Severity, n.MessageText)));
    }

    [Fact]
    public async Task Parameter_status_changes_reach_the_client()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        Assert.Equal("UTF8", connection.PostgresParameters["server_encoding"]);
        string applicationName = Backends.UniqueApplicationName("status");

        await using (var set = new NpgsqlCommand($"SET application_name = '{applicationName}'; SET TimeZone = 'Asia/Kathmandu'", connection))
        {
            await set.ExecuteNonQueryAsync();
        }

        Assert.Equal(applicationName, connection.PostgresParameters["application_name"]);
        Assert.Equal("Asia/Kathmandu", connection.PostgresParameters["TimeZone"]);
        Assert.Equal("Asia/Kathmandu", connection.Timezone);
        await using var show = new NpgsqlCommand("SHOW TimeZone", connection);
        Assert.Equal("Asia/Kathmandu", await show.ExecuteScalarAsync());
    }
}
