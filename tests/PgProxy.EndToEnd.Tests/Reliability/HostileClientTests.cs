using System.Globalization;
using Npgsql;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.Hostile;
using Xunit.Abstractions;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>
/// CI's short run of the hostile-client soak (bench/hostile.sh runs the million frames): 20,000 mutated frames of real
/// sessions, with a fixed seed, against the real pgproxy process with TLS offered, while an ordinary Npgsql session
/// keeps working through the same instance.
/// </summary>
[Collection(SharedPostgres.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // /proc
public sealed class HostileClientTests(PostgresFixture fixture, ITestOutputHelper output)
{
    private const string HostileDatabase = "pgproxy_hostile";

    [Fact]
    public async Task Twenty_thousand_mutated_frames_leave_the_proxy_up_and_every_session_ended()
    {
        // Mutated SQL runs in a database of its own, so what it might create stays away from the other tests.
        await CreateHostileDatabaseAsync();
        using var certificates = TestCertificates.Create();
        using ConfigDirectory directory = ConfigDirectory.Create(string.Create(CultureInfo.InvariantCulture, $$"""
            settings:
              log-level: info
            instances:
              - listen:
                  name: proxy
                  host: 127.0.0.1
                  port: 0
                  tls: {mode: allow, cert-file: {{certificates.ServerCertFile}}, key-file: {{certificates.ServerKeyFile}} }
                redirect: {name: postgresql, host: {{fixture.Server.Host}}, port: {{fixture.Server.Port}}, tls: {mode: disable} }
                limits: {startup-timeout: 1s, client-idle-timeout: 2s, max-message-size: 1MB}
            """));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        int port = proxy.PortOf("proxy");

        // Warm up what the first sessions load (TLS, the parser), then take the baseline.
        await using (var warmUp = new NpgsqlConnection(proxy.NpgsqlConnectionString("hostile-warm-up")))
        {
            await warmUp.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT 1", warmUp);
            await command.ExecuteScalarAsync();
        }

        await RunAsync(port, frames: 500, seed: 99, stalls: 0);
        int baselineDescriptors = Descriptors(proxy);

        // The ordinary session: open before, used during and after the hostile run. Its idle gaps stay well under the
        // 2 s client-idle-timeout.
        await using var ordinary = new NpgsqlConnection(proxy.NpgsqlConnectionString("ordinary"));
        await ordinary.OpenAsync();
        using var stop = new CancellationTokenSource();
        Task<int> ordinaryQueries = QueryUntilStoppedAsync(ordinary, stop.Token);

        HostileReport report = await RunAsync(port, frames: 20_000, seed: 1, stalls: 2);
        await stop.CancelAsync();
        int queries = await ordinaryQueries;
        output.WriteLine(report.Describe(TimeSpan.Zero));
        output.WriteLine($"ordinary session: {queries} queries during the run");

        Assert.False(proxy.HasExited, proxy.Output);
        Assert.True(report.FramesSent >= 20_000, $"{report.FramesSent} frames sent");
        Assert.True(report.Failures == 0, report.Describe(TimeSpan.Zero));
        Assert.Equal(2, report.Count(Scenario.MidFrameStall));
        Assert.True(report.Count(Ending.StartupTimeout) > 0, "no session was ended by startup-timeout");
        Assert.True(queries > 0, "the ordinary session ran no query during the run");
        await using (var command = new NpgsqlCommand("SELECT 42", ordinary))
        {
            Assert.Equal(42, await command.ExecuteScalarAsync());
        }

        await ordinary.CloseAsync();
        await Waiting.WaitUntilAsync(
            () => Task.FromResult(Descriptors(proxy) <= baselineDescriptors),
            TimeSpan.FromSeconds(10),
            $"the proxy's descriptors are back to their baseline of {baselineDescriptors} (now {Descriptors(proxy)})");
        Assert.DoesNotContain("Unhandled", proxy.Output, StringComparison.Ordinal);
    }

    /// <summary>
    /// Regression (bench/hostile.sh, 2026-12-03): after an SSLRequest and a good handshake, a record that does not
    /// decrypt, where the StartupMessage belongs, made the session log "Session N failed" at error level with the
    /// stack trace of an IOException. It is a client leaving before start-up: the connection closes, quietly.
    /// </summary>
    [Fact]
    public async Task A_corrupt_tls_record_before_the_startup_message_closes_the_connection_without_a_failure()
    {
        using var certificates = TestCertificates.Create();
        using ConfigDirectory directory = ConfigDirectory.Create(string.Create(CultureInfo.InvariantCulture, $$"""
            settings:
              log-level: info
            instances:
              - listen:
                  name: proxy
                  host: 127.0.0.1
                  port: 0
                  tls: {mode: allow, cert-file: {{certificates.ServerCertFile}}, key-file: {{certificates.ServerKeyFile}} }
                redirect: {name: postgresql, host: {{fixture.Server.Host}}, port: {{fixture.Server.Port}}, tls: {mode: disable} }
            """));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", proxy.PortOf("proxy"));
        await using var network = new System.Net.Sockets.NetworkStream(socket, ownsSocket: false);
        await network.WriteAsync(new byte[] { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f });
        byte[] answer = new byte[1];
        Assert.Equal(1, await network.ReadAsync(answer));
        Assert.Equal((byte)'S', answer[0]);
#pragma warning disable CA5359 // The test's own certificate authority; the proxy is what is tried here.
        await using (var tls = new System.Net.Security.SslStream(network, leaveInnerStreamOpen: true, (_, _, _, _) => true))
#pragma warning restore CA5359
        {
            await tls.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions { TargetHost = "localhost" });

            // An application-data record of 32 bytes that are not the cipher's output.
            byte[] record = [0x17, 3, 3, 0, 32, .. Enumerable.Range(0, 32).Select(i => (byte)(i * 37))];
            await socket.SendAsync(record);
            byte[] buffer = new byte[256];
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            while (await network.ReadAsync(buffer, deadline.Token) > 0)
            {
                // Whatever the proxy's TLS layer sends before it closes (an alert) is not read as PostgreSQL.
            }
        }

        await using (var after = new NpgsqlConnection(proxy.NpgsqlConnectionString("after-corrupt-record")))
        {
            await after.OpenAsync();
        }

        Assert.DoesNotMatch(@"Session \d+ failed", proxy.Output);
        Assert.DoesNotContain("IOException", proxy.Output, StringComparison.Ordinal);
    }

    private static async Task<int> QueryUntilStoppedAsync(NpgsqlConnection connection, CancellationToken stop)
    {
        int queries = 0;
        while (!stop.IsCancellationRequested)
        {
            await using var command = new NpgsqlCommand("SELECT count(*) FROM generate_series(1, 100)", connection);
            Assert.Equal(100L, await command.ExecuteScalarAsync(CancellationToken.None));
            queries++;
        }

        return queries;
    }

    private static Task<HostileReport> RunAsync(int port, long frames, int seed, int stalls) =>
        new HostileRun(new HostileSettings
        {
            Port = port,
            User = PostgresServer.TrustUser,
            Database = HostileDatabase,
            Frames = frames,
            Concurrency = 16,
            Seed = seed,
            Tls = true,
            StartupTimeout = TimeSpan.FromSeconds(1),
            IdleTimeout = TimeSpan.FromSeconds(2),
            Stalls = stalls,
        }).RunAsync(progress: null, CancellationToken.None);

    private static int Descriptors(ProxyProcess proxy) => Directory.GetFileSystemEntries($"/proc/{proxy.ProcessId}/fd").Length;

    private async Task CreateHostileDatabaseAsync()
    {
        string exists = await fixture.Server.QueryAsSuperuserAsync($"SELECT count(*) FROM pg_database WHERE datname = '{HostileDatabase}'");
        if (exists.Trim() == "0")
        {
            await fixture.Server.QueryAsSuperuserAsync($"CREATE DATABASE {HostileDatabase} OWNER {PostgresServer.TrustUser}");
        }
    }
}
