using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>A server of the disconnect tests' own: they count every backend of it, which a shared server cannot give.</summary>
public sealed class OwnServerFixture : IAsyncLifetime
{
    public PostgresServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await PostgresServer.StartNewAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// Clients that leave at every point: start-up, each SCRAM message, a COPY either way, a large result, a query in
/// flight. The server backend that served each (counted from /proc, see <see cref="ServerProcesses"/>) must be gone
/// within 1 s of the client's close, and the proxy must still serve.
/// </summary>
public sealed class DisconnectTests(OwnServerFixture own, ITestOutputHelper output) : IClassFixture<OwnServerFixture>
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(1);

    public enum Point
    {
        ConnectedOnly,
        AfterSslRequest,
        MidStartupPacket,
        AfterStartupMessage,
        AfterSaslInitialResponse,
        AfterServerFirstMessage,
        AfterSaslResponse,
        AfterLogin,
        CopyFromStdinInProgress,
        CopyToStdoutInProgress,
        LargeResultStreaming,
        QueryInFlight,
    }

    [Theory]
    [InlineData(Point.ConnectedOnly)]
    [InlineData(Point.AfterSslRequest)]
    [InlineData(Point.MidStartupPacket)]
    [InlineData(Point.AfterStartupMessage)]
    [InlineData(Point.AfterSaslInitialResponse)]
    [InlineData(Point.AfterServerFirstMessage)]
    [InlineData(Point.AfterSaslResponse)]
    [InlineData(Point.AfterLogin)]
    [InlineData(Point.CopyFromStdinInProgress)]
    [InlineData(Point.CopyToStdoutInProgress)]
    [InlineData(Point.LargeResultStreaming)]
    [InlineData(Point.QueryInFlight)]
    public async Task No_server_backend_outlives_a_client_that_leaves_by_more_than_a_second(Point point)
    {
        PostgresServer server = own.Server;
        await Waiting.WaitUntilAsync(() => Task.FromResult(ServerProcesses.ClientBackends(server).Count == 0), TimeSpan.FromSeconds(10), "the server has no client backend left from before");
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(server);
        RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        bool hasBackend;
        try
        {
            hasBackend = await GoToAsync(client, point);
            if (hasBackend)
            {
                await Waiting.WaitUntilAsync(() => Task.FromResult(ServerProcesses.ClientBackends(server).Count == 1), TimeSpan.FromSeconds(10), $"a backend serves the client at {point}");
            }
        }
        finally
        {
            await client.DisposeAsync();
        }

        var clock = Stopwatch.StartNew();
        await Waiting.WaitUntilAsync(() => Task.FromResult(ServerProcesses.ClientBackends(server).Count == 0), TimeSpan.FromSeconds(10), $"the backend of a client that left at {point} to end");
        TimeSpan gone = clock.Elapsed;
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.ScramUser, PostgresServer.ScramPassword));
        await connection.OpenAsync();
        object? served = await new NpgsqlCommand("SELECT 'served'", connection).ExecuteScalarAsync();

        output.WriteLine($"{point}: backend {(hasBackend ? "ended" : "never existed; checked")} {gone.TotalMilliseconds:0} ms after the client closed");
        Assert.True(gone <= Bound, $"the backend outlived its client (left at {point}) by {gone}");
        Assert.Equal("served", served);
        await Waiting.WaitUntilAsync(() => Task.FromResult(proxy.Server.ActiveSessions == 1), TimeSpan.FromSeconds(10), "the session of the client that left to end in the proxy");
    }

    /// <summary>Takes the client to <paramref name="point"/>; whether a server backend serves it there.</summary>
    private static async Task<bool> GoToAsync(RawPgClient client, Point point)
    {
        byte[] startup = RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.ScramUser), ("database", PostgresServer.Database));
        switch (point)
        {
            case Point.ConnectedOnly:
                return false;
            case Point.AfterSslRequest:
                await client.SendAsync([0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]);
                Assert.Equal('N', await client.ReadByteAsync());
                return false;
            case Point.MidStartupPacket:
                await client.SendAsync(startup[..(startup.Length / 2)]);
                return false;
            case Point.AfterStartupMessage:
                await client.SendAsync(startup);
                return true;
        }

        if (point is Point.AfterSaslInitialResponse or Point.AfterServerFirstMessage or Point.AfterSaslResponse)
        {
            await client.SendAsync(startup);
            RawMessage mechanisms = await client.ReadMessageAsync();
            Assert.Equal(10, BinaryPrimitives.ReadInt32BigEndian(mechanisms.Body));
            var scram = new ScramClient(PostgresServer.ScramPassword);
            await client.SendAsync(scram.InitialResponse());
            if (point == Point.AfterSaslInitialResponse)
            {
                return true;
            }

            RawMessage serverFirst = await client.ReadMessageAsync();
            Assert.Equal(11, BinaryPrimitives.ReadInt32BigEndian(serverFirst.Body));
            if (point == Point.AfterServerFirstMessage)
            {
                return true;
            }

            await client.SendAsync(scram.FinalResponse(Encoding.UTF8.GetString(serverFirst.Body, 4, serverFirst.Body.Length - 4)));
            return true;
        }

        List<RawMessage> login = await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);
        Assert.Equal('Z', login[^1].Code);
        switch (point)
        {
            case Point.AfterLogin:
                break;
            case Point.CopyFromStdinInProgress:
                Assert.Equal('Z', (await AskAsync(client, "CREATE TEMP TABLE copied (line text)"))[^1].Code);
                await client.SendAsync(RawPgClient.Query("COPY copied FROM STDIN"));
                Assert.Equal('G', (await client.ReadMessageAsync()).Code);
                await client.SendAsync(RawPgClient.Message('d', Encoding.UTF8.GetBytes("one line\nanother li")));
                break;
            case Point.CopyToStdoutInProgress:
                await client.SendAsync(RawPgClient.Query("COPY (SELECT repeat('x', 1000) FROM generate_series(1, 1000000)) TO STDOUT"));
                Assert.Equal('H', (await client.ReadMessageAsync()).Code);
                Assert.Equal('d', (await client.ReadMessageAsync()).Code);
                break;
            case Point.LargeResultStreaming:
                await client.SendAsync(RawPgClient.Query("SELECT repeat('x', 1000) FROM generate_series(1, 1000000)"));
                Assert.Equal('T', (await client.ReadMessageAsync()).Code);
                Assert.Equal('D', (await client.ReadMessageAsync()).Code);
                break;
            case Point.QueryInFlight:
                await client.SendAsync(RawPgClient.Query("SELECT pg_sleep(60)"));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(point), point, null);
        }

        return true;
    }

    private static async Task<List<RawMessage>> AskAsync(RawPgClient client, string sql)
    {
        await client.SendAsync(RawPgClient.Query(sql));
        return await client.ReadUntilReadyAsync();
    }

    /// <summary>The client's half of SCRAM-SHA-256 (RFC 5802, RFC 7677), as SASLInitialResponse and SASLResponse messages.</summary>
    private sealed class ScramClient(string password)
    {
        private readonly string clientNonce = Convert.ToBase64String(RandomNumberGenerator.GetBytes(18));

        private string ClientFirstBare => $"n=,r={clientNonce}";

        public byte[] InitialResponse()
        {
            byte[] mechanism = Encoding.ASCII.GetBytes("SCRAM-SHA-256\0");
            byte[] first = Encoding.UTF8.GetBytes("n,," + ClientFirstBare);
            var body = new byte[mechanism.Length + 4 + first.Length];
            mechanism.CopyTo(body, 0);
            BinaryPrimitives.WriteInt32BigEndian(body.AsSpan(mechanism.Length), first.Length);
            first.CopyTo(body, mechanism.Length + 4);
            return RawPgClient.Message('p', body);
        }

        public byte[] FinalResponse(string serverFirst)
        {
            Dictionary<char, string> fields = serverFirst.Split(',').ToDictionary(field => field[0], field => field[2..]);
            byte[] salted = Rfc2898DeriveBytes.Pbkdf2(
                Encoding.UTF8.GetBytes(password), Convert.FromBase64String(fields['s']), int.Parse(fields['i'], System.Globalization.CultureInfo.InvariantCulture), HashAlgorithmName.SHA256, 32);
            byte[] clientKey = HMACSHA256.HashData(salted, Encoding.ASCII.GetBytes("Client Key"));
            byte[] storedKey = SHA256.HashData(clientKey);
            string withoutProof = $"c=biws,r={fields['r']}";
            byte[] signature = HMACSHA256.HashData(storedKey, Encoding.UTF8.GetBytes($"{ClientFirstBare},{serverFirst},{withoutProof}"));
            byte[] proof = [.. clientKey.Zip(signature, (k, s) => (byte)(k ^ s))];
            return RawPgClient.Message('p', Encoding.ASCII.GetBytes($"{withoutProof},p={Convert.ToBase64String(proof)}"));
        }
    }
}
