using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>
/// Thousands of connections opened to the real pgproxy process and left silent: <c>limits.startup-timeout</c> frees
/// them all, its descriptors come back, and a client running queries the whole time sees no error. CI opens 2,000;
/// <c>PGPROXY_SILENT_CONNECTIONS=10000</c> runs the figure of docs/reliability.md.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class SilentConnectionsTests(PostgresFixture fixture, ITestOutputHelper output)
{
    private static readonly TimeSpan StartupTimeout = TimeSpan.FromSeconds(3);

    private static int Count =>
        int.TryParse(Environment.GetEnvironmentVariable("PGPROXY_SILENT_CONNECTIONS"), NumberStyles.None, CultureInfo.InvariantCulture, out int count) ? count : 2000;

    [Fact]
    public async Task Silent_connections_are_freed_by_startup_timeout_and_a_working_client_sees_no_error()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        string yaml = ConfigDirectory.OneInstance(fixture.Server) + "\n    limits:\n      startup-timeout: 3s\n";
        using ConfigDirectory directory = ConfigDirectory.Create(yaml);
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        int port = proxy.PortOf("proxy");
        string connectionString = ProxyProcess.TrustConnectionString(port, "silent-neighbour");

        // The working client runs before, during and after the silent connections; it only stops when told.
        using var stopWorking = new CancellationTokenSource();
        int queries = 0;
        var errors = new List<Exception>();
        using var working = new ManualResetEventSlim();
        Task worker = Task.Run(async () =>
        {
            while (!stopWorking.IsCancellationRequested)
            {
                try
                {
                    await using var connection = new NpgsqlConnection(connectionString);
                    await connection.OpenAsync(deadline.Token);
                    for (int i = 0; i < 50 && !stopWorking.IsCancellationRequested; i++)
                    {
                        await using var command = new NpgsqlCommand($"SELECT {i} + 1", connection);
                        int result = (int)(await command.ExecuteScalarAsync(deadline.Token))!;
                        Assert.Equal(i + 1, result);
                        Interlocked.Increment(ref queries);
                        working.Set();
                    }
                }
                catch (Exception e) when (!deadline.IsCancellationRequested)
                {
                    lock (errors)
                    {
                        errors.Add(e);
                    }
                }
            }
        });
        Assert.True(working.Wait(TimeSpan.FromSeconds(30)), "the working client runs queries");
        int baseline = DescriptorsOf(proxy.ProcessId);

        var silent = new Socket[Count];
        var clock = Stopwatch.StartNew();
        try
        {
            for (int batch = 0; batch < Count; batch += 250)
            {
                await Task.WhenAll(Enumerable.Range(batch, Math.Min(250, Count - batch)).Select(async i =>
                {
                    silent[i] = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    await silent[i].ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), deadline.Token);
                }));
            }

            TimeSpan opened = clock.Elapsed;
            int queriesWhenOpened = Volatile.Read(ref queries);
            await Waiting.WaitUntilAsync(() => Task.FromResult(DescriptorsOf(proxy.ProcessId) >= baseline + (Count / 2)), TimeSpan.FromSeconds(30), "the proxy to hold the silent connections");
            int held = DescriptorsOf(proxy.ProcessId);
            bool[] closed = await Task.WhenAll(silent.Select(socket => ClosedByPeerAsync(socket, deadline.Token)));
            TimeSpan allClosed = clock.Elapsed;
            await Waiting.WaitUntilAsync(() => Task.FromResult(DescriptorsOf(proxy.ProcessId) <= baseline + 20), TimeSpan.FromSeconds(10), "the proxy's descriptors to come back");
            int queriesWhenClosed = Volatile.Read(ref queries);
            await Waiting.WaitUntilAsync(() => Task.FromResult(Volatile.Read(ref queries) > queriesWhenClosed + 10), TimeSpan.FromSeconds(10), "the working client to go on");
            stopWorking.Cancel();
            await worker.WaitAsync(TimeSpan.FromSeconds(30));

            output.WriteLine($"{Count} silent connections opened in {opened.TotalMilliseconds:0} ms, all closed by the proxy {allClosed.TotalMilliseconds:0} ms after the first was opened (startup-timeout {StartupTimeout.TotalSeconds:0} s); proxy descriptors {baseline} → {held} → {DescriptorsOf(proxy.ProcessId)}; the working client ran {queries} queries ({queriesWhenClosed - queriesWhenOpened} while they were held) with {errors.Count} errors");
            Assert.Empty(errors);
            Assert.All(closed, Assert.True);
            Assert.True(allClosed < opened + StartupTimeout + TimeSpan.FromSeconds(5), $"the last silent connection was closed only {allClosed} after the first was opened ({opened} to open them all)");
            Assert.True(queriesWhenClosed > queriesWhenOpened, "the working client ran no query while the silent connections were held");
        }
        finally
        {
            stopWorking.Cancel();
            foreach (Socket? socket in silent)
            {
                socket?.Dispose();
            }
        }
    }

    private static async Task<bool> ClosedByPeerAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[256];
        try
        {
            // An ErrorResponse may come first; the end of the stream is what frees the connection.
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken) > 0)
            {
            }

            return true;
        }
        catch (SocketException)
        {
            return true;
        }
    }

    private static int DescriptorsOf(int processId) => Directory.GetFiles($"/proc/{processId.ToString(CultureInfo.InvariantCulture)}/fd").Length;
}
