using System.Buffers.Binary;
using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>
/// A client that reads slowly slows the server down through the proxy: the pgproxy process never buffers a result
/// without bound, and a client that leaves in the middle of a large result leaves no server backend behind.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class BackpressureTests(PostgresFixture fixture, ITestOutputHelper output)
{
    private const int Rows = 1_000_000;
    private const int RowWidth = 1000;

    /// <summary>One DataRow of one text column of <see cref="RowWidth"/> bytes: type, length, column count, column length, value.</summary>
    private const long DataRowBytes = 1 + 4 + 2 + 4 + RowWidth;

    private const long PeakMemoryLimitKilobytes = 100 * 1024;
    private const int SlowReadChunkBytes = 50 * 1024 * 1024;
    private const int SlowReadPauses = 4;
    private static readonly string LargeQuery = $"SELECT repeat('x', {RowWidth}) FROM generate_series(1, {Rows})";
    private static readonly TimeSpan BlockedDeadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_slow_reader_of_1_GB_keeps_the_proxy_under_100_MB()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using var monitor = new NpgsqlConnection(fixture.Server.ConnectionString(PostgresServer.Superuser));
        await monitor.OpenAsync();
        string applicationName = UniqueName("slow");
        await using RawPgClient client = await StartSessionAsync(proxy, applicationName, receiveBufferSize: 16 * 1024);
        var counter = new DataRowCounter();
        var buffer = new byte[64 * 1024];

        await client.SendAsync(RawPgClient.Query(LargeQuery));
        for (int pause = 0; pause < SlowReadPauses; pause++)
        {
            // The client stops reading: the server must end up blocked writing, with the proxy holding only its buffers.
            await WaitUntilServerBlockedWritingAsync(monitor, applicationName);
            output.WriteLine($"pause {pause}: {counter.TotalBytes / (1024 * 1024)} MB read, proxy VmRSS {proxy.StatusKilobytes("VmRSS")} kB, VmHWM {proxy.StatusKilobytes("VmHWM")} kB");
            long target = counter.TotalBytes + SlowReadChunkBytes;
            while (counter.TotalBytes < target && !counter.Ready)
            {
                await ReadChunkAsync(client, buffer, counter);
            }
        }

        while (!counter.Ready)
        {
            await ReadChunkAsync(client, buffer, counter);
        }

        long peakKilobytes = proxy.StatusKilobytes("VmHWM");
        output.WriteLine($"done: {counter.TotalBytes} bytes, {counter.DataRows} rows, proxy VmRSS {proxy.StatusKilobytes("VmRSS")} kB, VmHWM {peakKilobytes} kB");

        Assert.Equal(Rows, counter.DataRows);
        Assert.Equal(Rows * DataRowBytes, counter.DataRowBytesTotal);
        Assert.Equal("CommandComplete", counter.LastBeforeReady);
        Assert.True(peakKilobytes < PeakMemoryLimitKilobytes, $"the proxy's peak resident memory was {peakKilobytes} kB, over {PeakMemoryLimitKilobytes} kB");
    }

    [Fact]
    public async Task A_client_that_leaves_in_the_middle_of_a_large_result_leaves_no_backend()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using var monitor = new NpgsqlConnection(fixture.Server.ConnectionString(PostgresServer.Superuser));
        await monitor.OpenAsync();
        string applicationName = UniqueName("leave");
        var counter = new DataRowCounter();
        var buffer = new byte[64 * 1024];

        await using (RawPgClient client = await StartSessionAsync(proxy, applicationName, receiveBufferSize: 16 * 1024))
        {
            await client.SendAsync(RawPgClient.Query(LargeQuery));
            while (counter.TotalBytes < 10 * 1024 * 1024)
            {
                await ReadChunkAsync(client, buffer, counter);
            }

            Assert.Equal(1, await BackendCountAsync(monitor, applicationName));
        }

        await Waiting.WaitUntilAsync(
            async () => await BackendCountAsync(monitor, applicationName) == 0,
            TimeSpan.FromSeconds(20),
            $"no backend of {applicationName} remains");
        Assert.False(proxy.HasExited, proxy.Output);
        await using RawPgClient next = await StartSessionAsync(proxy, UniqueName("next"), receiveBufferSize: null);
        await next.SendAsync(RawPgClient.Query("SELECT 1"));
        Assert.Equal('Z', (await next.ReadUntilReadyAsync())[^1].Code);
    }

    private static string UniqueName(string what) => $"backpressure-{what}-{Guid.NewGuid():N}"[..32];

    private static async Task ReadChunkAsync(RawPgClient client, byte[] buffer, DataRowCounter counter)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int read = await client.ReadSomeAsync(buffer, deadline.Token);
        if (read == 0)
        {
            throw new InvalidOperationException($"the proxy closed the connection after {counter.TotalBytes} bytes");
        }

        counter.Feed(buffer.AsSpan(0, read));
    }

    private static async Task<RawPgClient> StartSessionAsync(ProxyProcess proxy, string applicationName, int? receiveBufferSize)
    {
        RawPgClient client = await RawPgClient.ConnectAsync("127.0.0.1", proxy.PortOf("proxy"), receiveBufferSize);
        await client.SendAsync(RawPgClient.StartupPacket(
            3 << 16,
            ("user", PostgresServer.TrustUser),
            ("database", PostgresServer.Database),
            ("application_name", applicationName)));
        Assert.Equal('Z', (await client.ReadUntilReadyAsync())[^1].Code);
        return client;
    }

    private static async Task<long> BackendCountAsync(NpgsqlConnection monitor, string applicationName)
    {
        await using var command = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", monitor);
        command.Parameters.Add(new NpgsqlParameter { Value = applicationName });
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static Task WaitUntilServerBlockedWritingAsync(NpgsqlConnection monitor, string applicationName) =>
        Waiting.WaitUntilAsync(
            async () =>
            {
                await using var command = new NpgsqlCommand(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'ClientWrite'", monitor);
                command.Parameters.Add(new NpgsqlParameter { Value = applicationName });
                return (long)(await command.ExecuteScalarAsync())! == 1;
            },
            BlockedDeadline,
            $"the backend of {applicationName} waits on ClientWrite (backpressure reached the server)");

    /// <summary>Follows the message framing of a byte stream from the server, counting DataRows, without keeping the bytes.</summary>
    private sealed class DataRowCounter
    {
        private readonly byte[] header = new byte[5];
        private int headerFilled;
        private long bodyRemaining;
        private char current;

        public long TotalBytes { get; private set; }

        public long DataRows { get; private set; }

        public long DataRowBytesTotal { get; private set; }

        public bool Ready { get; private set; }

        public string? LastBeforeReady { get; private set; }

        private char previous;

        public void Feed(ReadOnlySpan<byte> bytes)
        {
            TotalBytes += bytes.Length;
            while (!bytes.IsEmpty)
            {
                if (bodyRemaining > 0)
                {
                    int skip = (int)Math.Min(bodyRemaining, bytes.Length);
                    bodyRemaining -= skip;
                    bytes = bytes[skip..];
                    continue;
                }

                int take = Math.Min(header.Length - headerFilled, bytes.Length);
                bytes[..take].CopyTo(header.AsSpan(headerFilled));
                headerFilled += take;
                bytes = bytes[take..];
                if (headerFilled < header.Length)
                {
                    return;
                }

                headerFilled = 0;
                previous = current;
                current = (char)header[0];
                int length = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1));
                bodyRemaining = length - 4;
                if (current == 'D')
                {
                    DataRows++;
                    DataRowBytesTotal += 1 + length;
                }
                else if (current == 'E')
                {
                    throw new InvalidOperationException("the server sent an ErrorResponse");
                }
                else if (current == 'Z')
                {
                    Ready = true;
                    LastBeforeReady = previous == 'C' ? "CommandComplete" : previous.ToString();
                }
            }
        }
    }
}
