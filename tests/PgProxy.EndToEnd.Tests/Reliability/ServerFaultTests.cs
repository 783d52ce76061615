using System.Diagnostics;
using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>
/// PostgreSQL stopped with <c>-m immediate</c> under load, on a server of its own: every client sees an error, the proxy
/// survives, and new sessions work within a second of the server accepting connections again.
/// </summary>
public sealed class ServerFaultTests(ITestOutputHelper output)
{
    private const int Clients = 8;

    [Fact]
    public async Task An_immediate_stop_under_load_gives_every_client_an_error_and_the_proxy_serves_again_within_a_second()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await using PostgresServer server = await PostgresServer.StartNewAsync(deadline.Token);
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(server);
        string connectionString = proxy.ConnectionString(PostgresServer.TrustUser);
        int[] completed = new int[Clients];
        Exception?[] failures = new Exception?[Clients];
        using var running = new CountdownEvent(Clients);
        Task[] loops = [.. Enumerable.Range(0, Clients).Select(i => Task.Run(async () =>
        {
            try
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(deadline.Token);
                bool signalled = false;
                while (true)
                {
                    await using var command = new NpgsqlCommand("SELECT pg_sleep(0.005), 1", connection);
                    await command.ExecuteScalarAsync(deadline.Token);
                    completed[i]++;
                    if (!signalled)
                    {
                        running.Signal();
                        signalled = true;
                    }
                }
            }
            catch (Exception e) when (e is NpgsqlException or IOException or InvalidOperationException)
            {
                failures[i] = e;
            }
        }))];
        Assert.True(running.Wait(TimeSpan.FromSeconds(30)), "every client runs queries through the proxy");

        var clock = Stopwatch.StartNew();
        await server.StopImmediatelyAsync(deadline.Token);
        await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(30));
        TimeSpan allFailed = clock.Elapsed;
        await server.StartAsync(deadline.Token);
        var back = Stopwatch.StartNew();
        await Waiting.WaitUntilAsync(
            async () =>
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(deadline.Token);
                await using var command = new NpgsqlCommand("SELECT 1", connection);
                return (int)(await command.ExecuteScalarAsync(deadline.Token))! == 1;
            },
            TimeSpan.FromSeconds(10),
            "a new session works through the proxy");
        TimeSpan recovered = back.Elapsed;

        output.WriteLine($"every one of {Clients} clients failed within {allFailed.TotalMilliseconds:0} ms of pg_ctl stop -m immediate; a new session worked {recovered.TotalMilliseconds:0} ms after pg_ctl start -w returned");
        Assert.All(failures, failure => Assert.NotNull(failure));
        Assert.True(recovered < TimeSpan.FromSeconds(1), $"a new session worked only after {recovered}");
        Assert.Equal(0, await WaitForNoSessionsAsync(proxy));
    }

    private static async Task<int> WaitForNoSessionsAsync(ProxyHarness proxy)
    {
        await Waiting.WaitUntilAsync(() => Task.FromResult(proxy.Server.ActiveSessions == 0), TimeSpan.FromSeconds(10), "the failed sessions to end");
        return proxy.Server.ActiveSessions;
    }
}
