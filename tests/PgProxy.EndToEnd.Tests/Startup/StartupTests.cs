using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Startup;

/// <summary>
/// The start-up phase as PostgreSQL does it, seen from a raw socket: encryption requests answered by the proxy,
/// protocol versions, malformed packets refused with PostgreSQL's SQLSTATE, cancel requests and limits.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class StartupTests(PostgresFixture fixture)
{
    private const int Protocol30 = 3 << 16;
    private const int SslRequestCode = (1234 << 16) | 5679;
    private const int GssEncRequestCode = (1234 << 16) | 5680;
    private const int CancelRequestCode = (1234 << 16) | 5678;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private PostgresServer Server => fixture.Server;

    [Fact]
    public async Task SSLRequest_is_answered_N_by_the_proxy_and_the_session_continues_in_plain_text()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        await client.SendAsync(EncryptionRequest(SslRequestCode));
        Assert.Equal('N', await client.ReadByteAsync());

        await AssertTrustSessionWorksAsync(client);
    }

    [Fact]
    public async Task GSSENCRequest_is_answered_N_by_the_proxy_and_the_session_continues_in_plain_text()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        await client.SendAsync(EncryptionRequest(GssEncRequestCode));
        Assert.Equal('N', await client.ReadByteAsync());

        await AssertTrustSessionWorksAsync(client);
    }

    [Fact]
    public async Task GSSENCRequest_then_SSLRequest_are_both_answered_N_then_the_startup_works()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        await client.SendAsync(EncryptionRequest(GssEncRequestCode));
        Assert.Equal('N', await client.ReadByteAsync());
        await client.SendAsync(EncryptionRequest(SslRequestCode));
        Assert.Equal('N', await client.ReadByteAsync());

        await AssertTrustSessionWorksAsync(client);
    }

    [Fact]
    public async Task Protocol_3_2_startup_gets_the_servers_NegotiateProtocolVersion_relayed_untouched()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        await client.SendAsync(RawPgClient.StartupPacket(
            (3 << 16) | 2, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)));
        List<RawMessage> messages = await client.ReadUntilReadyAsync();

        // PostgreSQL 15 speaks 3.0 only: it answers with the newest version it supports and no unrecognized options.
        RawMessage negotiate = messages[0];
        Assert.Equal('v', negotiate.Code);
        Assert.Equal(Protocol30, BinaryPrimitives.ReadInt32BigEndian(negotiate.Body));
        Assert.Equal(0, BinaryPrimitives.ReadInt32BigEndian(negotiate.Body.AsSpan(4)));
        Assert.Equal(8, negotiate.Body.Length);
        Assert.Equal('R', messages[1].Code);
        Assert.Equal(0, BinaryPrimitives.ReadInt32BigEndian(messages[1].Body)); // AuthenticationOk

        // Untouched: the same bytes the server sends a client connected to it directly.
        await using RawPgClient direct = await RawPgClient.ConnectAsync(Server.Host, Server.Port);
        await direct.SendAsync(RawPgClient.StartupPacket(
            (3 << 16) | 2, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)));
        Assert.Equal(negotiate, (await direct.ReadUntilReadyAsync())[0], RawMessageComparer.Instance);
        Assert.Equal('Z', messages[^1].Code);
    }

    [Fact]
    public async Task A_startup_packet_arriving_a_few_bytes_at_a_time_is_assembled()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        byte[] ssl = EncryptionRequest(SslRequestCode);
        await client.SendAsync(ssl[..3]);
        await client.SendAsync(ssl[3..]);
        Assert.Equal('N', await client.ReadByteAsync());

        byte[] startup = RawPgClient.StartupPacket(Protocol30, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database));
        for (int offset = 0; offset < startup.Length; offset += 5)
        {
            await client.SendAsync(startup[offset..Math.Min(offset + 5, startup.Length)]);
        }

        List<RawMessage> messages = await client.ReadUntilReadyAsync();
        Assert.DoesNotContain(messages, message => message.Code == 'E');
    }

    [Fact]
    public async Task An_SSLRequest_and_a_StartupMessage_sent_together_get_N_then_the_session()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        await client.SendAsync([
            .. EncryptionRequest(SslRequestCode),
            .. RawPgClient.StartupPacket(Protocol30, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)),
        ]);

        Assert.Equal('N', await client.ReadByteAsync());
        List<RawMessage> messages = await client.ReadUntilReadyAsync();
        Assert.DoesNotContain(messages, message => message.Code == 'E');
    }

    [Fact]
    public async Task A_second_SSLRequest_is_refused_with_0A000_as_PostgreSQL_refuses_it()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server);
        await using RawPgClient direct = await RawPgClient.ConnectAsync(Server.Host, Server.Port);
        await using RawPgClient proxied = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);

        foreach (RawPgClient client in new[] { direct, proxied })
        {
            await client.SendAsync(EncryptionRequest(SslRequestCode));
            Assert.Equal('N', await client.ReadByteAsync());
            await client.SendAsync(EncryptionRequest(SslRequestCode));
            RawMessage error = await client.ReadMessageAsync();
            Assert.Equal('E', error.Code);
            Assert.Equal("0A000", error.SqlState);
            Assert.True(await client.IsClosedByPeerAsync(Deadline));
        }
    }

    [Fact]
    public async Task An_upstream_that_closes_during_startup_gets_the_client_a_FATAL_08001_not_a_silent_drop()
    {
        using var refusing = new TcpListener(IPAddress.Loopback, 0);
        refusing.Start();
        int port = ((IPEndPoint)refusing.LocalEndpoint).Port;
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TestConfigs.Relay(IPAddress.Loopback.ToString(), port));
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await client.SendAsync(RawPgClient.StartupPacket(Protocol30, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)));

        using (var deadline = new CancellationTokenSource(Deadline))
        using (Socket accepted = await refusing.AcceptSocketAsync(deadline.Token))
        {
            accepted.Shutdown(SocketShutdown.Both);
        }

        RawMessage error = await client.ReadMessageAsync();
        Assert.Equal('E', error.Code);
        Assert.Equal("FATAL", error.Fields()['S']);
        Assert.Equal("08001", error.SqlState);
        Assert.Contains("\"postgresql\"", error.Fields()['M'], StringComparison.Ordinal);
        Assert.True(await client.IsClosedByPeerAsync(Deadline));
    }

    public static TheoryData<string, string> MalformedStartups => new()
    {
        { "length below 8", "08P01" },
        { "length above 10000", "08P01" },
        { "negative length", "08P01" },
        { "TLS ClientHello", "08P01" },
        { "protocol 2.0", "0A000" },
        { "protocol 4.0", "0A000" },
        { "no user", "28000" },
        { "no final terminator", "08P01" },
    };

    [Theory]
    [MemberData(nameof(MalformedStartups))]
    public async Task Malformed_startup_gets_a_FATAL_error_and_the_connection_closes_and_the_proxy_serves_the_next_client(string startup, string sqlState)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server);
        await using (RawPgClient bad = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port))
        {
            await bad.SendAsync(MalformedStartup(startup));

            RawMessage error = await bad.ReadMessageAsync();
            Assert.Equal('E', error.Code);
            Assert.Equal("FATAL", error.Fields()['S']);
            Assert.Equal(sqlState, error.SqlState);
            Assert.True(await bad.IsClosedByPeerAsync(Deadline), "the proxy should close the connection after the error");
        }

        await using RawPgClient next = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await AssertTrustSessionWorksAsync(next);
    }

    [Fact]
    public async Task A_message_with_a_length_field_below_4_gets_08P01_and_the_session_closes()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);

        await client.SendAsync([(byte)'Q', 0, 0, 0, 2]);

        RawMessage error = await client.ReadMessageAsync();
        Assert.Equal('E', error.Code);
        Assert.Equal("08P01", error.SqlState);
        Assert.True(await client.IsClosedByPeerAsync(Deadline));
    }

    [Fact]
    public async Task A_message_above_max_message_size_is_refused_from_its_header_and_its_backend_goes_away()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, new InstanceLimits { MaxMessageSize = 64 * 1024 });
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        string applicationName = "startup-too-large-" + Guid.NewGuid().ToString("N");
        await client.SendAsync(RawPgClient.StartupPacket(
            Protocol30,
            ("user", PostgresServer.TrustUser),
            ("database", PostgresServer.Database),
            ("application_name", applicationName)));
        await client.ReadUntilReadyAsync();
        Assert.Equal(1, await BackendsNamedAsync(applicationName));

        // Only the header of a 1 GB query: the proxy must refuse it without waiting for a body that never comes.
        byte[] header = new byte[5];
        header[0] = (byte)'Q';
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), 1 << 30);
        await client.SendAsync(header);

        RawMessage error = await client.ReadMessageAsync(TimeSpan.FromSeconds(10));
        Assert.Equal('E', error.Code);
        Assert.Equal("FATAL", error.Fields()['S']);
        Assert.Equal("08P01", error.SqlState);
        Assert.True(await client.IsClosedByPeerAsync(Deadline));
        await Waiting.WaitUntilAsync(
            async () => await BackendsNamedAsync(applicationName) == 0,
            Deadline,
            "the upstream backend of the refused session leaves pg_stat_activity");
    }

    [Fact]
    public async Task A_message_of_exactly_max_message_size_is_relayed_and_one_byte_more_is_refused()
    {
        const int Limit = 64 * 1024;
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, new InstanceLimits { MaxMessageSize = Limit });
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);

        await client.SendAsync(QueryOfTotalSize(Limit));
        List<RawMessage> answer = await client.ReadUntilReadyAsync();
        Assert.DoesNotContain(answer, message => message.Code == 'E');
        Assert.Single(answer, message => message.Code == 'D');

        await client.SendAsync(QueryOfTotalSize(Limit + 1));
        RawMessage error = await client.ReadMessageAsync();
        Assert.Equal('E', error.Code);
        Assert.Equal("08P01", error.SqlState);
        Assert.True(await client.IsClosedByPeerAsync(Deadline));
    }

    private static byte[] QueryOfTotalSize(int total)
    {
        // Type byte, length, "SELECT '", padding, "'", NUL.
        int padding = total - 5 - "SELECT ''".Length - 1;
        byte[] message = RawPgClient.Query("SELECT '" + new string('x', padding) + "'");
        Assert.Equal(total, message.Length);
        return message;
    }

    [Fact]
    public async Task An_unreachable_upstream_gets_FATAL_08001_naming_the_redirect_and_other_instances_keep_serving()
    {
        using Socket reserved = BoundButNotListening(out int closedPort);
        ProxyConfig config = new(
            [],
            new ProxySettings { ShutdownTimeout = TimeSpan.FromSeconds(5) },
            [
                TestConfigs.Instance("down", IPAddress.Loopback.ToString(), closedPort),
                TestConfigs.Instance("up", Server.Host, Server.Port),
            ],
            Path.GetTempPath());
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config);

        await using (RawPgClient refused = await RawPgClient.ConnectAsync(proxy.Host, proxy.PortOf("down")))
        {
            await refused.SendAsync(RawPgClient.StartupPacket(Protocol30, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)));
            RawMessage error = await refused.ReadMessageAsync();
            Assert.Equal('E', error.Code);
            Assert.Equal("FATAL", error.Fields()['S']);
            Assert.Equal("08001", error.SqlState);
            Assert.Contains("\"postgresql\"", error.Fields()['M'], StringComparison.Ordinal);
            Assert.True(await refused.IsClosedByPeerAsync(Deadline));
        }

        await using RawPgClient served = await RawPgClient.ConnectAsync(proxy.Host, proxy.PortOf("up"));
        await AssertTrustSessionWorksAsync(served);
    }

    [Fact]
    public async Task A_CancelRequest_through_the_proxy_cancels_a_running_query()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        List<RawMessage> startup = await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);
        RawMessage keyData = Assert.Single(startup, message => message.Code == 'K');
        int backendPid = BinaryPrimitives.ReadInt32BigEndian(keyData.Body);

        await client.SendAsync(RawPgClient.Query("SELECT pg_sleep(30)"));
        await Waiting.WaitUntilAsync(
            async () => await ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE pid = {backendPid} AND state = 'active' AND query LIKE '%pg_sleep%'") == 1,
            Deadline,
            "the sleeping query is running");

        byte[] cancel = new byte[16];
        BinaryPrimitives.WriteInt32BigEndian(cancel, 16);
        BinaryPrimitives.WriteInt32BigEndian(cancel.AsSpan(4), CancelRequestCode);
        keyData.Body.AsSpan(0, 8).CopyTo(cancel.AsSpan(8));
        await using (RawPgClient canceller = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port))
        {
            await canceller.SendAsync(cancel);
            Assert.True(await canceller.IsClosedByPeerAsync(Deadline), "the proxy closes a cancel connection");
        }

        // The RowDescription of the query came before it started sleeping; the error and ReadyForQuery follow.
        List<RawMessage> answer = await client.ReadUntilReadyAsync();
        RawMessage error = Assert.Single(answer, message => message.Code == 'E');
        Assert.Equal("57014", error.SqlState);
        Assert.Equal('Z', answer[^1].Code);
        Assert.DoesNotContain(answer, message => message.Code == 'D');
    }

    [Fact]
    public async Task Max_connections_refuses_the_client_over_the_limit_with_53300()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Server, new InstanceLimits { MaxConnections = 2 });
        await using RawPgClient first = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await first.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);
        await using RawPgClient second = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await second.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);

        await using RawPgClient third = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await third.SendAsync(RawPgClient.StartupPacket(Protocol30, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)));
        RawMessage error = await third.ReadMessageAsync();
        Assert.Equal('E', error.Code);
        Assert.Equal("FATAL", error.Fields()['S']);
        Assert.Equal("53300", error.SqlState);
        Assert.True(await third.IsClosedByPeerAsync(Deadline));

        // The two sessions admitted still work.
        await first.SendAsync(RawPgClient.Query("SELECT 1"));
        Assert.Equal('Z', (await first.ReadUntilReadyAsync())[^1].Code);
    }

    private static async Task AssertTrustSessionWorksAsync(RawPgClient client)
    {
        List<RawMessage> startup = await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);
        Assert.DoesNotContain(startup, message => message.Code == 'E');
        Assert.Equal('Z', startup[^1].Code);

        await client.SendAsync(RawPgClient.Query("SELECT 41 + 1"));
        List<RawMessage> answer = await client.ReadUntilReadyAsync();
        RawMessage row = Assert.Single(answer, message => message.Code == 'D');
        Assert.Equal("42", Encoding.UTF8.GetString(row.Body, 6, row.Body.Length - 6));
    }

    private static byte[] EncryptionRequest(int code)
    {
        byte[] packet = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(packet, 8);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), code);
        return packet;
    }

    private static byte[] MalformedStartup(string name) => name switch
    {
        // Exactly the bytes announced, so nothing is left unread when the proxy closes.
        "length below 8" => [0, 0, 0, 7, 0, 3, 0],
        "length above 10000" => LengthAndVersion(10_001, Protocol30),
        "negative length" => LengthAndVersion(-16, Protocol30),
        "TLS ClientHello" => [0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03],
        "protocol 2.0" => RawPgClient.StartupPacket(2 << 16, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)),
        "protocol 4.0" => RawPgClient.StartupPacket(4 << 16, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)),
        "no user" => RawPgClient.StartupPacket(Protocol30, ("database", PostgresServer.Database)),
        "no final terminator" => WithoutFinalTerminator(),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    private static byte[] LengthAndVersion(int length, int version)
    {
        byte[] packet = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(packet, length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), version);
        return packet;
    }

    private static byte[] WithoutFinalTerminator()
    {
        byte[] complete = RawPgClient.StartupPacket(Protocol30, ("user", PostgresServer.TrustUser));
        byte[] packet = complete[..^1];
        BinaryPrimitives.WriteInt32BigEndian(packet, packet.Length);
        return packet;
    }

    /// <summary>
    /// A port that refuses connections for as long as the socket lives: bound, so no other test can take it, and not
    /// listening. A port merely freed again could be reused by a parallel test's listener.
    /// </summary>
    private static Socket BoundButNotListening(out int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        return socket;
    }

    private Task<long> BackendsNamedAsync(string applicationName) =>
        ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{applicationName}'");

    private async Task<T> ScalarAsync<T>(string sql)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        await using var connection = new NpgsqlConnection(Server.ConnectionString(PostgresServer.Superuser));
        await connection.OpenAsync(deadline.Token);
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync(deadline.Token))!;
    }

    /// <summary>Two messages are equal when their type and every body byte are.</summary>
    private sealed class RawMessageComparer : IEqualityComparer<RawMessage>
    {
        public static RawMessageComparer Instance { get; } = new();

        public bool Equals(RawMessage? x, RawMessage? y) =>
            x is not null && y is not null && x.Code == y.Code && x.Body.AsSpan().SequenceEqual(y.Body);

        public int GetHashCode(RawMessage obj) => obj.Code;
    }
}
