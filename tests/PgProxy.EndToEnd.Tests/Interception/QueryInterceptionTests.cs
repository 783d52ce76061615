using System.Text;
using Npgsql;
using PgProxy.Abstractions;
using PgProxy.Core.Interception;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Interception;

[Collection(SharedPostgres.Name)]
public sealed class QueryInterceptionTests(PostgresFixture fixture)
{
    private PostgresServer Server => fixture.Server;

    private static async Task<RawPgClient> RawSessionAsync(ProxyHarness proxy, params (string Name, string Value)[] extra)
    {
        RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, [("user", PostgresServer.TrustUser), ("database", PostgresServer.Database), .. extra]));
        List<RawMessage> startup = await client.ReadUntilReadyAsync();
        Assert.Equal('Z', startup[^1].Code);
        return client;
    }

    private static string Text(RawMessage dataRow)
    {
        // One column: Int16 count, Int32 length, bytes.
        int length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(dataRow.Body.AsSpan(2));
        return Encoding.UTF8.GetString(dataRow.Body, 6, length);
    }

    [Fact]
    public async Task A_simple_query_is_rewritten_before_the_server_sees_it()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(Interceptors.Replace("'before'", "'after'")));
        await using RawPgClient client = await RawSessionAsync(proxy);

        await client.SendAsync(RawPgClient.Query("SELECT 'before' AS v; SELECT 'untouched' AS w"));
        List<RawMessage> messages = await client.ReadUntilReadyAsync();

        Assert.Equal(["after", "untouched"], messages.Where(m => m.Code == 'D').Select(Text));
        Assert.Contains(proxy.Logs.Lines, l => l.Contains("rewritten by test.query0", StringComparison.Ordinal) && l.Contains("'after'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_parse_keeps_its_statement_name_and_parameter_types_when_rewritten()
    {
        DelegateQueryInterceptor interceptor = Interceptors.Replace("$1::int + 1", "$1::int + 100");
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(interceptor));
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT $1::int + 1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = 1, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer });
        await command.PrepareAsync();

        // A prepared (named) statement, executed several times, runs the rewritten text every time.
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(101, await command.ExecuteScalarAsync());
        }

        QueryMessage parse = Assert.Single(interceptor.Seen, q => q.Kind == QueryMessageKind.Parse && q.Text.Contains("$1", StringComparison.Ordinal));
        Assert.NotEqual(string.Empty, parse.StatementName);
        Assert.Equal([23u], parse.ParameterTypes);
    }

    [Fact]
    public async Task A_refused_simple_query_gets_one_error_with_the_chosen_sqlstate_and_the_session_goes_on()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(Interceptors.RefuseContaining("secret_table", "42501", "no access to secret_table")));
        await using RawPgClient client = await RawSessionAsync(proxy);

        await client.SendAsync(RawPgClient.Query("SELECT * FROM secret_table"));
        List<RawMessage> refused = await client.ReadUntilReadyAsync();
        await client.SendAsync(RawPgClient.Query("SELECT 'still here'"));
        List<RawMessage> after = await client.ReadUntilReadyAsync();

        Assert.Equal("EZ", new string([.. refused.Select(m => m.Code)]));
        IReadOnlyDictionary<char, string> fields = refused[0].Fields();
        Assert.Equal("42501", fields['C']);
        Assert.Equal("no access to secret_table", fields['M']);
        Assert.Equal("ERROR", fields['S']);
        Assert.Equal("CMSV", new string([.. fields.Keys.Order()]));
        Assert.Equal((byte)'I', refused[1].Body[0]);
        Assert.Equal("still here", Text(after.Single(m => m.Code == 'D')));
    }

    [Fact]
    public async Task A_refusal_inside_a_transaction_fails_the_transaction_on_both_sides()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(Interceptors.RefuseContaining("forbidden")));
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using (var create = new NpgsqlCommand("CREATE TEMP TABLE t (v int)", connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync();
        await using (var insert = new NpgsqlCommand("INSERT INTO t VALUES (1)", connection, transaction))
        {
            await insert.ExecuteNonQueryAsync();
        }

        var refused = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var command = new NpgsqlCommand("SELECT 'forbidden'", connection, transaction);
            await command.ExecuteScalarAsync();
        });
        var aborted = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var command = new NpgsqlCommand("SELECT 1", connection, transaction);
            await command.ExecuteScalarAsync();
        });
        await transaction.RollbackAsync();
        await using var count = new NpgsqlCommand("SELECT count(*) FROM t", connection);

        Assert.Equal("42501", refused.SqlState);
        Assert.Equal("25P02", aborted.SqlState);
        Assert.Equal(0L, await count.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_refused_parse_in_a_pipeline_skips_to_the_sync_with_one_error_and_rolls_back_the_batch()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(Interceptors.RefuseContaining("forbidden", "42501", "forbidden here")));
        string table = $"pipeline_{Guid.NewGuid():N}";
        await using (var setup = new NpgsqlConnection(Server.ConnectionString(PostgresServer.TrustUser)))
        {
            await setup.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE TABLE {table} (v int)", setup);
            await create.ExecuteNonQueryAsync();
        }

        await using RawPgClient client = await RawSessionAsync(proxy);
        byte[] Parse(string sql) => RawPgClient.Message('P', [0, .. Encoding.UTF8.GetBytes(sql), 0, 0, 0]);
        byte[] bind = RawPgClient.Message('B', [0, 0, 0, 0, 0, 0, 0, 0]);
        byte[] execute = RawPgClient.Message('E', [0, 0, 0, 0, 0]);
        byte[] sync = RawPgClient.Message('S', []);
        await client.SendAsync([
            .. Parse($"INSERT INTO {table} VALUES (1)"), .. bind, .. execute,
            .. Parse("SELECT 'forbidden'"), .. bind, .. execute,
            .. Parse($"INSERT INTO {table} VALUES (2)"), .. bind, .. execute,
            .. sync]);
        List<RawMessage> batch = await client.ReadUntilReadyAsync();
        await client.SendAsync(RawPgClient.Query($"SELECT count(*)::text FROM {table}"));
        List<RawMessage> count = await client.ReadUntilReadyAsync();

        // The first statement's completions, then the one error, then ReadyForQuery: nothing of the refused one.
        Assert.Equal("12CEZ", new string([.. batch.Select(m => m.Code)]));
        Assert.Equal("forbidden here", batch[3].Fields()['M']);
        Assert.Equal((byte)'I', batch[4].Body[0]);
        Assert.Equal("0", Text(count.Single(m => m.Code == 'D')));
    }

    [Fact]
    public async Task A_refused_statement_in_an_npgsql_batch_fails_the_batch_and_the_connection_stays_usable()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(Interceptors.RefuseContaining("forbidden", "28000", "not for you")));
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands = { new("SELECT 1"), new("SELECT 'forbidden'"), new("SELECT 3") },
        };

        var error = await Assert.ThrowsAsync<PostgresException>(() => batch.ExecuteNonQueryAsync());
        await using var after = new NpgsqlCommand("SELECT 42", connection);

        Assert.Equal("28000", error.SqlState);
        Assert.Equal("not for you", error.MessageText);
        Assert.Equal(42, await after.ExecuteScalarAsync());
    }

    [Fact]
    public async Task An_interceptor_that_throws_refuses_with_XX000_under_the_refuse_policy()
    {
        // Npgsql runs queries of its own when it opens a connection: the plugin's bug shows on one query only.
        var broken = new DelegateQueryInterceptor((query, _, _) => query.Text.Contains("boom", StringComparison.Ordinal)
            ? throw new InvalidOperationException("plugin bug")
            : ValueTask.FromResult(QueryDecision.Continue));
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(InterceptorFailurePolicy.Refuse, TimeSpan.FromSeconds(5), broken));
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();

        var error = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var command = new NpgsqlCommand("SELECT 'boom'", connection);
            await command.ExecuteScalarAsync();
        });

        Assert.Equal("XX000", error.SqlState);
        Assert.Contains("test.query0", error.MessageText, StringComparison.Ordinal);
        Assert.Contains(proxy.Logs.Lines, l => l.Contains("plugin bug", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_interceptor_that_throws_passes_the_query_unchanged_by_default()
    {
        var broken = new DelegateQueryInterceptor((query, _, _) => query.Text.Contains("boom", StringComparison.Ordinal)
            ? throw new InvalidOperationException("plugin bug")
            : ValueTask.FromResult(QueryDecision.Continue));
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(broken));
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT 7 AS boom", connection);

        Assert.Equal(7, await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task An_interceptor_that_hangs_past_its_timeout_refuses_with_XX000_and_the_session_goes_on()
    {
        var hanging = new DelegateQueryInterceptor(async (query, _, _) =>
        {
            if (query.Text.Contains("hang", StringComparison.Ordinal))
            {
                // Ignores its cancellation token on purpose: the proxy must stop waiting anyway.
                await new TaskCompletionSource().Task;
            }

            return QueryDecision.Continue;
        });
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(InterceptorFailurePolicy.Refuse, TimeSpan.FromMilliseconds(300), hanging));

        // A raw client: Npgsql itself closes a connection on any XX000, which would hide whether the proxy kept it.
        await using RawPgClient client = await RawSessionAsync(proxy);
        await client.SendAsync([
            .. RawPgClient.Message('P', [0, .. Encoding.UTF8.GetBytes("SELECT 'hang'"), 0, 0, 0]),
            .. RawPgClient.Message('B', [0, 0, 0, 0, 0, 0, 0, 0]),
            .. RawPgClient.Message('D', [(byte)'P', 0]),
            .. RawPgClient.Message('E', [0, 0, 0, 0, 0]),
            .. RawPgClient.Message('S', [])]);
        List<RawMessage> refused = await client.ReadUntilReadyAsync();
        await client.SendAsync(RawPgClient.Query("SELECT 'after'"));
        List<RawMessage> after = await client.ReadUntilReadyAsync();

        Assert.Equal("EZ", new string([.. refused.Select(m => m.Code)]));
        Assert.Equal("XX000", refused[0].SqlState);
        Assert.Contains("timed out", refused[0].Fields()['M'], StringComparison.Ordinal);
        Assert.Equal("after", Text(after.Single(m => m.Code == 'D')));
    }

    [Fact]
    public async Task A_metadata_query_runs_on_the_session_connection_between_requests_and_the_client_never_sees_it()
    {
        var lookups = new List<string?>();
        var interceptor = new DelegateQueryInterceptor(async (query, session, cancellationToken) =>
        {
            if (!query.Text.Contains("whoami", StringComparison.Ordinal))
            {
                return QueryDecision.Continue;
            }

            UpstreamQueryResult result = await session.QueryUpstreamAsync("SELECT pg_backend_pid()::text AS pid, current_user AS who", cancellationToken);
            lookups.Add(result.Rows[0][0]);
            return QueryDecision.Rewrite($"SELECT '{result.Columns[1]}=' || '{result.Rows[0][1]}' AS answer, pg_backend_pid()::text AS pid");
        });
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(interceptor));
        await using RawPgClient client = await RawSessionAsync(proxy);

        // Pipelined: a slow query is still running when the one that needs metadata arrives.
        await client.SendAsync([.. RawPgClient.Query("SELECT pg_sleep(0.3)::text"), .. RawPgClient.Query("SELECT 'whoami'")]);
        List<RawMessage> first = await client.ReadUntilReadyAsync();
        List<RawMessage> second = await client.ReadUntilReadyAsync();

        Assert.Equal("TDCZ", new string([.. first.Select(m => m.Code)]));
        Assert.Equal("TDCZ", new string([.. second.Select(m => m.Code)]));
        RawMessage row = second.Single(m => m.Code == 'D');
        string[] values = DataRowValues(row);
        Assert.Equal($"who={PostgresServer.TrustUser}", values[0]);
        Assert.Equal(values[1], Assert.Single(lookups));
    }

    [Fact]
    public async Task A_metadata_query_in_a_failed_transaction_is_refused_with_an_exception_the_plugin_can_handle()
    {
        Exception? seen = null;
        var interceptor = new DelegateQueryInterceptor(async (query, session, cancellationToken) =>
        {
            if (query.Text.Contains("probe", StringComparison.Ordinal))
            {
                try
                {
                    await session.QueryUpstreamAsync("SELECT 1", cancellationToken);
                }
                catch (UpstreamQueryException e)
                {
                    seen = e;
                }
            }

            return QueryDecision.Continue;
        });
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(interceptor));
        await using RawPgClient client = await RawSessionAsync(proxy);

        await client.SendAsync(RawPgClient.Query("BEGIN; SELECT 1/0"));
        await client.ReadUntilReadyAsync();
        await client.SendAsync(RawPgClient.Query("SELECT 'probe'"));
        List<RawMessage> probe = await client.ReadUntilReadyAsync();
        await client.SendAsync(RawPgClient.Query("ROLLBACK"));
        List<RawMessage> rollback = await client.ReadUntilReadyAsync();

        Assert.Equal("25P02", Assert.IsType<UpstreamQueryException>(seen).SqlState);
        Assert.Equal("25P02", probe.Single(m => m.Code == 'E').SqlState);
        Assert.Equal((byte)'I', rollback[^1].Body[0]);
    }

    [Theory]
    [InlineData("LATIN1", "café", "crème brûlée")]
    [InlineData("WIN1252", "5 €", "10 € — ‰")]
    [InlineData("UTF8", "naïve", "ナイーブ")]
    public async Task Query_text_is_decoded_and_encoded_in_the_client_encoding(string clientEncoding, string before, string after)
    {
        var interceptor = Interceptors.Replace(before, after);
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Queries(interceptor));
        await using RawPgClient client = await RawSessionAsync(proxy, ("client_encoding", clientEncoding));
        Encoding encoding = PgProxy.Protocol.PostgresEncodings.Find(clientEncoding)!;
        string sql = $"SELECT '{before}' AS v, length('{before}')";

        await client.SendAsync(RawPgClient.Message('Q', [.. encoding.GetBytes(sql), 0]));
        List<RawMessage> messages = await client.ReadUntilReadyAsync();

        // The server, converting from the client encoding, saw the rewritten characters, not their bytes.
        string[] values = DataRowValues(messages.Single(m => m.Code == 'D'), encoding);
        Assert.Equal(after, values[0]);
        Assert.Equal(after.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), values[1]);
        Assert.Equal(sql, Assert.Single(interceptor.Seen).Text);
    }

    [Fact]
    public async Task Start_up_interceptors_change_parameters_and_refuse_users()
    {
        var interceptor = new DelegateStartupInterceptor((startup, _) =>
        {
            if (startup["user"] == PostgresServer.Md5User)
            {
                return StartupDecision.Refuse("28000", "md5_user may not connect through this proxy");
            }

            startup["application_name"] = "set-by-pgproxy";
            return StartupDecision.Continue;
        });
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, Interceptors.Connects(interceptor));

        await using var allowed = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await allowed.OpenAsync();
        await using var name = new NpgsqlCommand("SHOW application_name", allowed);
        var refused = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.Md5User, PostgresServer.Md5Password));
            await connection.OpenAsync();
        });

        Assert.Equal("set-by-pgproxy", await name.ExecuteScalarAsync());
        Assert.Equal("28000", refused.SqlState);
        Assert.Equal("md5_user may not connect through this proxy", refused.MessageText);
    }

    private static string[] DataRowValues(RawMessage row, Encoding? encoding = null)
    {
        encoding ??= Encoding.UTF8;
        int count = System.Buffers.Binary.BinaryPrimitives.ReadInt16BigEndian(row.Body);
        var values = new string[count];
        int offset = 2;
        for (int i = 0; i < count; i++)
        {
            int length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(row.Body.AsSpan(offset));
            offset += 4;
            values[i] = encoding.GetString(row.Body, offset, length);
            offset += length;
        }

        return values;
    }
}
