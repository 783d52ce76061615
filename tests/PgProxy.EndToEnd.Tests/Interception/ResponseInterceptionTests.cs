using System.Buffers.Binary;
using System.Text;
using Npgsql;
using PgProxy.Abstractions;
using PgProxy.Core.Interception;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Interception;

[Collection(SharedPostgres.Name)]
public sealed class ResponseInterceptionTests(PostgresFixture fixture)
{
    private PostgresServer Server => fixture.Server;

    private static async Task<RawPgClient> RawSessionAsync(ProxyHarness proxy)
    {
        RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, [("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)]));
        List<RawMessage> startup = await client.ReadUntilReadyAsync();
        Assert.Equal('Z', startup[^1].Code);
        return client;
    }

    /// <summary>The text values of a DataRow (null for NULL).</summary>
    private static string?[] Values(RawMessage dataRow)
    {
        byte[] body = dataRow.Body;
        int count = BinaryPrimitives.ReadInt16BigEndian(body);
        var values = new string?[count];
        int offset = 2;
        for (int i = 0; i < count; i++)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(body.AsSpan(offset));
            offset += 4;
            if (length >= 0)
            {
                values[i] = Encoding.UTF8.GetString(body, offset, length);
                offset += length;
            }
        }

        Assert.Equal(body.Length, offset);
        return values;
    }

    /// <summary>A DataRow's text values joined with |, NULL for SQL NULL.</summary>
    private static string Row(RawMessage dataRow) => string.Join("|", Values(dataRow).Select(v => v ?? "NULL"));

    private static string CString(byte[] body) => Encoding.UTF8.GetString(body, 0, Array.IndexOf(body, (byte)0));

    private static byte[] Z(string s) => [.. Encoding.UTF8.GetBytes(s), 0];

    private static byte[] Parse(string name, string sql) => RawPgClient.Message('P', [.. Z(name), .. Z(sql), 0, 0]);

    private static byte[] DescribeStatement(string name) => RawPgClient.Message('D', [(byte)'S', .. Z(name)]);

    private static byte[] Bind(string portal, string statement) => RawPgClient.Message('B', [.. Z(portal), .. Z(statement), 0, 0, 0, 0, 0, 0]);

    private static byte[] Execute(string portal) => RawPgClient.Message('E', [.. Z(portal), 0, 0, 0, 0]);

    private static byte[] Sync() => RawPgClient.Message('S', []);

    private static async Task<NpgsqlConnection> OpenAsync(ProxyHarness proxy)
    {
        var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        return connection;
    }

    [Fact]
    public async Task A_column_named_email_is_masked_in_a_simple_query()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, ResponseInterceptors.Of(ResponseInterceptors.MaskEmail()));
        await using RawPgClient client = await RawSessionAsync(proxy);

        await client.SendAsync(RawPgClient.Query("SELECT 'ann@example.com' AS email, 'ann' AS name, NULL::text AS email; SELECT 'not an email' AS other"));
        List<RawMessage> messages = await client.ReadUntilReadyAsync();

        Assert.Equal(["***|ann|NULL", "not an email"], messages.Where(m => m.Code == 'D').Select(Row));
        Assert.Equal("TDCTDCZ", new string([.. messages.Select(m => m.Code)]));
    }

    [Fact]
    public async Task A_column_named_email_is_masked_in_the_extended_protocol()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, ResponseInterceptors.Of(ResponseInterceptors.MaskEmail()));
        await using NpgsqlConnection connection = await OpenAsync(proxy);
        await using var command = new NpgsqlCommand("SELECT $1::text AS email, $1::text AS copy, 42 AS n", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = "bob@example.com" });

        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal("***", reader.GetString(0));
        Assert.Equal("bob@example.com", reader.GetString(1));
        Assert.Equal(42, reader.GetInt32(2));
    }

    [Fact]
    public async Task A_prepared_statement_has_its_rows_masked_on_its_tenth_execution()
    {
        DelegateResponseInterceptor mask = ResponseInterceptors.MaskEmail();
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, ResponseInterceptors.Of(mask));
        await using NpgsqlConnection connection = await OpenAsync(proxy);
        await using var command = new NpgsqlCommand("SELECT $1::text AS email, $1::int AS n", connection);
        var parameter = new NpgsqlParameter<string> { TypedValue = "0" };
        command.Parameters.Add(parameter);
        await command.PrepareAsync();

        var seen = new List<(string Email, int N)>();
        for (int i = 1; i <= 10; i++)
        {
            parameter.TypedValue = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            seen.Add((reader.GetString(0), reader.GetInt32(1)));
        }

        Assert.All(seen, row => Assert.Equal("***", row.Email));
        Assert.Equal(Enumerable.Range(1, 10), seen.Select(row => row.N));
        Assert.Equal(("***", 10), seen[9]);
        Assert.Equal(["email", "n"], mask.LastRowColumns!.Select(c => c.Name));
        Assert.Equal([25u, 23u], mask.LastRowColumns!.Select(c => c.TypeOid));
    }

    [Fact]
    public async Task Text_values_are_masked_in_text_and_binary_format_but_a_binary_integer_is_left_alone()
    {
        DelegateResponseInterceptor mask = ResponseInterceptors.MaskEmail();
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, ResponseInterceptors.Of(mask));
        await using NpgsqlConnection connection = await OpenAsync(proxy);

        // Npgsql asks for binary results: text is the same bytes in binary, an int4 is not text at all.
        await using var command = new NpgsqlCommand("SELECT 'x@example.com'::varchar AS email, 12345 AS email", connection);
        await using (NpgsqlDataReader reader = await command.ExecuteReaderAsync())
        {
            Assert.True(await reader.ReadAsync());
            Assert.Equal("***", reader.GetString(0));
            Assert.Equal(12345, reader.GetInt32(1));
        }

        Assert.Equal([(short)1, (short)1], mask.LastRowColumns!.Select(c => c.FormatCode));
        Assert.Equal([true, false], mask.LastRowColumns!.Select(c => c.IsText));

        // The same query in text format through the raw protocol: both are text, both masked.
        await using RawPgClient client = await RawSessionAsync(proxy);
        await client.SendAsync([.. Parse("", "SELECT 'x@example.com'::varchar AS email, 12345 AS email"), .. Bind("", ""), .. RawPgClient.Message('D', [(byte)'P', 0]), .. Execute(""), .. Sync()]);
        List<RawMessage> messages = await client.ReadUntilReadyAsync();
        Assert.Equal("***|***", Row(Assert.Single(messages, m => m.Code == 'D')));
    }

    [Fact]
    public async Task A_command_tag_can_be_changed()
    {
        var retag = new DelegateResponseInterceptor(ResponseKinds.CommandComplete, message =>
        {
            if (message.CommandTag!.StartsWith("SELECT", StringComparison.Ordinal))
            {
                message.CommandTag = "SELECT 99";
            }
        });
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, ResponseInterceptors.Of(retag));
        await using RawPgClient client = await RawSessionAsync(proxy);

        await client.SendAsync(RawPgClient.Query("SELECT 1; BEGIN; COMMIT"));
        List<RawMessage> messages = await client.ReadUntilReadyAsync();

        Assert.Equal(["SELECT 99", "BEGIN", "COMMIT"], messages.Where(m => m.Code == 'C').Select(m => CString(m.Body)));
        Assert.Equal(3, retag.Seen);
    }

    [Fact]
    public async Task A_notice_field_can_be_changed_and_an_error_passes_with_its_fields()
    {
        var reword = new DelegateResponseInterceptor(ResponseKinds.NoticeResponse | ResponseKinds.ErrorResponse, message =>
        {
            if (message.Kind == ResponseKinds.NoticeResponse)
            {
                message.SetField('M', "reworded: " + message.GetField('M'));
            }
        });
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, ResponseInterceptors.Of(reword));
        await using RawPgClient client = await RawSessionAsync(proxy);

        await client.SendAsync(RawPgClient.Query("DO $$ BEGIN RAISE NOTICE 'héllo'; END $$"));
        List<RawMessage> messages = await client.ReadUntilReadyAsync();
        await client.SendAsync(RawPgClient.Query("SELECT 1/0"));
        List<RawMessage> failed = await client.ReadUntilReadyAsync();

        RawMessage notice = Assert.Single(messages, m => m.Code == 'N');
        Assert.Equal("reworded: héllo", notice.Fields()['M']);
        Assert.Equal("NOTICE", notice.Fields()['S']);
        Assert.Equal("22012", Assert.Single(failed, m => m.Code == 'E').SqlState);
        Assert.Equal(2, reword.Seen);
    }

    [Fact]
    public async Task A_pipelined_batch_with_an_error_in_the_middle_keeps_the_columns_of_the_statements_after_its_sync()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, ResponseInterceptors.Of(ResponseInterceptors.MaskEmail()));
        await using RawPgClient client = await RawSessionAsync(proxy);

        // Two statements described once, with email in different places; then, in one write, a batch that fails in
        // the middle (the server skips the rest up to its Sync) and a batch after it.
        await client.SendAsync([
            .. Parse("s1", "SELECT 'a@x'::text AS email, 'k1'::text AS keep"), .. DescribeStatement("s1"),
            .. Parse("s2", "SELECT 'k2'::text AS keep, 'b@x'::text AS email"), .. DescribeStatement("s2"),
            .. Sync(),
            .. Bind("", "s1"), .. Execute(""),
            .. Parse("", "SELECT 'c@x'::text AS keep, (1/(random() * 0)::int)::text AS email"), .. Bind("", ""), .. Execute(""),
            .. Bind("", "s1"), .. Execute(""), .. Bind("p", "s2"), .. Execute("p"),
            .. Sync(),
            .. Bind("", "s2"), .. Execute(""), .. Bind("", "s1"), .. Execute(""),
            .. Sync(),
        ]);
        List<RawMessage> described = await client.ReadUntilReadyAsync();
        List<RawMessage> failing = await client.ReadUntilReadyAsync();
        List<RawMessage> after = await client.ReadUntilReadyAsync();

        Assert.Equal("1tT1tTZ", new string([.. described.Select(m => m.Code)]));
        Assert.Equal("2DC12EZ", new string([.. failing.Select(m => m.Code)]));
        Assert.Equal("***|k1", Row(failing[1]));
        Assert.Equal("2DC2DCZ", new string([.. after.Select(m => m.Code)]));
        Assert.Equal("k2|***", Row(after[1]));
        Assert.Equal("***|k1", Row(after[4]));
    }

    [Fact]
    public async Task Without_a_dataRow_interceptor_rows_pass_byte_for_byte()
    {
        var tagsOnly = new DelegateResponseInterceptor(ResponseKinds.CommandComplete, _ => { });
        await using ProxyHarness plain = await ProxyHarness.StartAsync(Server, InstanceInterceptors.None);
        await using ProxyHarness queriesOnly = await ProxyHarness.StartAsync(Server, Interceptors.Queries(Interceptors.Replace("never", "matches")));
        await using ProxyHarness responses = await ProxyHarness.StartAsync(Server, ResponseInterceptors.Of(tagsOnly));

        var rows = new List<byte[]>();
        foreach (ProxyHarness proxy in new[] { plain, queriesOnly, responses })
        {
            await using RawPgClient client = await RawSessionAsync(proxy);
            await client.SendAsync(RawPgClient.Query("SELECT 'ann@example.com' AS email, NULL AS n, '' AS e"));
            rows.Add(Assert.Single(await client.ReadUntilReadyAsync(), m => m.Code == 'D').Body);
        }

        byte[] expected = [0, 3, 0, 0, 0, 15, .. Encoding.UTF8.GetBytes("ann@example.com"), 255, 255, 255, 255, 0, 0, 0, 0];
        Assert.All(rows, row => Assert.Equal(expected, row));
        Assert.Equal(1, tagsOnly.Seen);
    }

    [Fact]
    public async Task Masking_keeps_its_pairing_across_a_refused_parse_and_a_metadata_query()
    {
        string? metadataSeen = null;
        var queries = new DelegateQueryInterceptor(async (query, session, cancellationToken) =>
        {
            if (query.Text.Contains("forbidden", StringComparison.Ordinal))
            {
                return QueryDecision.Refuse("42501", "no");
            }

            if (query.Text.Contains("/* meta */", StringComparison.Ordinal))
            {
                UpstreamQueryResult result = await session.QueryUpstreamAsync("SELECT 'meta@x'::text AS email", cancellationToken);
                metadataSeen = result.Rows[0][0];
            }

            return QueryDecision.Continue;
        });
        var interceptors = new InstanceInterceptors(
            [new NamedInterceptor<IQueryInterceptor>("test.query", queries)],
            [],
            [new NamedInterceptor<IResponseInterceptor>("test.mask", ResponseInterceptors.MaskEmail())],
            TimeSpan.FromSeconds(5),
            InterceptorFailurePolicy.Refuse);
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, interceptors);

        await using (RawPgClient client = await RawSessionAsync(proxy))
        {
            await client.SendAsync([
                .. Parse("s1", "SELECT 'k'::text AS keep, 'a@x'::text AS email"), .. DescribeStatement("s1"), .. Sync(),
                .. Bind("", "s1"), .. Execute(""), .. Parse("", "SELECT 'forbidden'"), .. Bind("", ""), .. Execute(""), .. Sync(),
                .. Bind("", "s1"), .. Execute(""), .. Sync(),
            ]);
            Assert.Equal('Z', (await client.ReadUntilReadyAsync())[^1].Code);
            List<RawMessage> refused = await client.ReadUntilReadyAsync();
            List<RawMessage> after = await client.ReadUntilReadyAsync();

            Assert.Equal("k|***", Row(Assert.Single(refused, m => m.Code == 'D')));
            Assert.Equal("42501", Assert.Single(refused, m => m.Code == 'E').SqlState);
            Assert.Equal("k|***", Row(Assert.Single(after, m => m.Code == 'D')));
        }

        // A metadata query's rows are the plugin's, unmasked; the client's prepared statement is masked every time.
        await using NpgsqlConnection connection = await OpenAsync(proxy);
        await using var command = new NpgsqlCommand("/* meta */ SELECT 'c@x'::text AS email, 'kept'::text AS keep", connection);
        await command.PrepareAsync();
        for (int i = 0; i < 3; i++)
        {
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal("***", reader.GetString(0));
            Assert.Equal("kept", reader.GetString(1));
        }

        Assert.Equal("meta@x", metadataSeen);
    }

    [Theory]
    [InlineData(InterceptorFailurePolicy.Refuse, "CZ")]
    [InlineData(InterceptorFailurePolicy.PassThrough, "DCZ")]
    public async Task A_failing_row_interceptor_withholds_the_row_under_refuse_and_passes_it_under_pass(InterceptorFailurePolicy policy, string expected)
    {
        var broken = new DelegateResponseInterceptor(ResponseKinds.DataRow, _ => throw new InvalidOperationException("plugin bug"));
        var interceptors = new InstanceInterceptors([], [], [new NamedInterceptor<IResponseInterceptor>("test.broken", broken)], TimeSpan.FromSeconds(5), policy);
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, interceptors);
        await using RawPgClient client = await RawSessionAsync(proxy);

        await client.SendAsync(RawPgClient.Query("SELECT 'a@x' AS email"));
        List<RawMessage> messages = await client.ReadUntilReadyAsync();
        await client.SendAsync(RawPgClient.Query("SELECT 1"));
        List<RawMessage> after = await client.ReadUntilReadyAsync();

        Assert.Equal("T" + expected, new string([.. messages.Select(m => m.Code)]));
        Assert.Equal('Z', after[^1].Code);
        Assert.Contains(proxy.Logs.Lines, l => l.Contains("test.broken failed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_masked_value_is_encoded_in_a_latin1_client_encoding_and_a_parameter_status_can_be_changed()
    {
        Encoding latin1 = Encoding.Latin1;
        var mask = new DelegateResponseInterceptor(ResponseKinds.DataRow | ResponseKinds.ParameterStatus, message =>
        {
            if (message.Kind == ResponseKinds.ParameterStatus)
            {
                if (message.ParameterName == "application_name")
                {
                    message.ParameterValue = "renamed by pgproxy";
                }

                return;
            }

            int email = message.IndexOf("email");
            Assert.Equal("café@x", message.GetText(email));
            message.SetText(email, "masqué");
        });
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, ResponseInterceptors.Of(mask));
        RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await using (client)
        {
            await client.SendAsync(RawPgClient.StartupPacket(3 << 16, [("user", PostgresServer.TrustUser), ("database", PostgresServer.Database), ("client_encoding", "LATIN1")]));
            await client.ReadUntilReadyAsync();

            await client.SendAsync(RawPgClient.Message('Q', latin1.GetBytes("SELECT 'café@x' AS email, 'naïve' AS word; SET application_name = 'mine'\0")));
            List<RawMessage> messages = await client.ReadUntilReadyAsync();

            byte[] row = Assert.Single(messages, m => m.Code == 'D').Body;
            byte[] expected = [0, 2, 0, 0, 0, 6, .. latin1.GetBytes("masqué"), 0, 0, 0, 5, .. latin1.GetBytes("naïve")];
            Assert.Equal(expected, row);
            RawMessage status = Assert.Single(messages, m => m.Code == 'S');
            Assert.Equal("application_name\0renamed by pgproxy\0", Encoding.UTF8.GetString(status.Body));
        }
    }
}
