using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Relay;

/// <summary>
/// Sessions through the proxy from open to close: cancellation, many at once, two instances at once, and what is
/// left behind (upstream backends, log lines) when a client goes, politely or not.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed partial class NpgsqlSessionTests(PostgresFixture fixture)
{
    [Fact]
    public async Task Cancelling_a_running_query_gives_57014_quickly_and_the_connection_stays_usable()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        string applicationName = Backends.UniqueApplicationName("cancel");
        await using var connection = new NpgsqlConnection(Backends.WithApplicationName(proxy.ConnectionString(PostgresServer.TrustUser), applicationName));
        await connection.OpenAsync();
        await using var sleep = new NpgsqlCommand("SELECT pg_sleep(30)", connection);

        var stopwatch = Stopwatch.StartNew();
        Task<object?> running = sleep.ExecuteScalarAsync();
        await Backends.WaitUntilCountAsync(fixture.Server, applicationName, 1, state: "active");
        await Task.Run(sleep.Cancel);

        // Npgsql reports the server's cancellation error as an OperationCanceledException wrapping it.
        Exception error = await Assert.ThrowsAnyAsync<Exception>(() => running);
        PostgresException serverError = error as PostgresException ?? Assert.IsType<PostgresException>(error.InnerException);
        Assert.Equal(PostgresErrorCodes.QueryCanceled, serverError.SqlState);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(15), $"the cancel took {stopwatch.Elapsed}");
        await using var after = new NpgsqlCommand("SELECT 'usable'", connection);
        Assert.Equal("usable", await after.ExecuteScalarAsync());
        await Waiting.WaitUntilAsync(
            () => Task.FromResult(proxy.Logs.Lines.Any(line => line.Contains("cancel", StringComparison.OrdinalIgnoreCase))),
            Backends.Deadline,
            "the proxy logs the forwarded cancel request");
    }

    [Fact]
    public async Task A_hundred_and_twenty_sessions_at_once_all_get_their_own_results_and_leave_nothing_behind()
    {
        const int Sessions = 120;
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        string applicationName = Backends.UniqueApplicationName("many");
        string connectionString = Backends.WithApplicationName(proxy.ConnectionString(PostgresServer.Md5User, PostgresServer.Md5Password), applicationName);
        var connections = new NpgsqlConnection[Sessions];
        try
        {
            for (int i = 0; i < Sessions; i++)
            {
                connections[i] = new NpgsqlConnection(connectionString);
            }

            await Task.WhenAll(connections.Select(c => c.OpenAsync()));
            Assert.Equal(Sessions, proxy.Server.ActiveSessions);
            Assert.Equal(Sessions, await Backends.CountAsync(fixture.Server, applicationName));

            await Task.WhenAll(connections.Select(async (connection, index) =>
            {
                for (int round = 0; round < 10; round++)
                {
                    await using var command = new NpgsqlCommand("SELECT @session * 1000 + @round, pg_backend_pid()", connection);
                    command.Parameters.AddWithValue("session", index);
                    command.Parameters.AddWithValue("round", round);
                    await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
                    Assert.True(await reader.ReadAsync());
                    Assert.Equal((index * 1000) + round, reader.GetInt32(0));
                    Assert.Equal(connection.ProcessID, reader.GetInt32(1));
                }
            }));
        }
        finally
        {
            foreach (NpgsqlConnection connection in connections.Where(c => c is not null))
            {
                await connection.DisposeAsync();
            }
        }

        await Waiting.WaitUntilAsync(() => Task.FromResult(proxy.Server.ActiveSessions == 0), Backends.Deadline, "the proxy has no session left");
        await Backends.WaitUntilGoneAsync(fixture.Server, applicationName);
    }

    [Fact]
    public async Task Two_instances_relay_at_the_same_time()
    {
        ProxyConfig config = TestConfigs.Relay(fixture.Server.Host, fixture.Server.Port) with
        {
            Instances =
            [
                TestConfigs.Instance("alpha", fixture.Server.Host, fixture.Server.Port),
                TestConfigs.Instance("beta", fixture.Server.Host, fixture.Server.Port),
            ],
        };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config);
        Assert.NotEqual(proxy.PortOf("alpha"), proxy.PortOf("beta"));

        async Task<string> UseAsync(string instance, int index)
        {
            string applicationName = $"{instance}-{index}";
            await using var connection = new NpgsqlConnection(Backends.WithApplicationName(proxy.ConnectionString(PostgresServer.ScramUser, PostgresServer.ScramPassword, instance: instance), applicationName));
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT current_setting('application_name') || ':' || (SELECT sum(i) FROM generate_series(1, 1000 * @n) i)", connection);
            command.Parameters.AddWithValue("n", index + 1);
            return (string)(await command.ExecuteScalarAsync())!;
        }

        var work = new List<(string Expected, Task<string> Actual)>();
        foreach (string instance in new[] { "alpha", "beta" })
        {
            for (int index = 0; index < 10; index++)
            {
                long n = 1000L * (index + 1);
                work.Add(($"{instance}-{index}:{n * (n + 1) / 2}", UseAsync(instance, index)));
            }
        }

        await Task.WhenAll(work.Select(w => w.Actual));
        Assert.All(work, w => Assert.Equal(w.Expected, w.Actual.Result));
        IReadOnlyList<string> lines = proxy.Logs.Lines;
        Assert.Equal(10, lines.Count(l => l.Contains(" opened: ", StringComparison.Ordinal) && l.EndsWith("instance alpha", StringComparison.Ordinal)));
        Assert.Equal(10, lines.Count(l => l.Contains(" opened: ", StringComparison.Ordinal) && l.EndsWith("instance beta", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_closed_client_leaves_no_upstream_backend()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        string applicationName = Backends.UniqueApplicationName("closed");
        await using (var connection = new NpgsqlConnection(Backends.WithApplicationName(proxy.ConnectionString(PostgresServer.TrustUser), applicationName)))
        {
            await connection.OpenAsync();
            Assert.Equal(1, await Backends.CountAsync(fixture.Server, applicationName));
        }

        await Backends.WaitUntilGoneAsync(fixture.Server, applicationName);
        await Waiting.WaitUntilAsync(() => Task.FromResult(proxy.Server.ActiveSessions == 0), Backends.Deadline, "the proxy has no session left");
    }

    [Fact]
    public async Task A_client_that_vanishes_in_the_middle_of_a_large_result_leaves_no_upstream_backend()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        string applicationName = Backends.UniqueApplicationName("vanish");
        await using (RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port, receiveBufferSize: 16 * 1024))
        {
            await client.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database), ("application_name", applicationName)));
            await client.ReadUntilReadyAsync();
            await client.SendAsync(RawPgClient.Query("SELECT a, b, repeat('x', 200) FROM generate_series(1, 10000) a, generate_series(1, 10000) b"));
            Assert.Equal('T', (await client.ReadMessageAsync()).Code);
            for (int i = 0; i < 100; i++)
            {
                Assert.Equal('D', (await client.ReadMessageAsync()).Code);
            }

            // The server is now blocked on a full socket, mid-result.
            await Backends.WaitUntilCountAsync(fixture.Server, applicationName, 1, state: "active");
            client.Socket.LingerState = new LingerOption(true, 0); // close with a reset, as a crashed client would
        }

        await Backends.WaitUntilGoneAsync(fixture.Server, applicationName);
        await Waiting.WaitUntilAsync(() => Task.FromResult(proxy.Server.ActiveSessions == 0), Backends.Deadline, "the proxy has no session left");
        Assert.Contains(proxy.Logs.Lines, l => l.Contains(" closed: ", StringComparison.Ordinal) && l.EndsWith("(client closed)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Closing_an_npgsql_connection_sends_terminate_and_the_proxy_logs_it()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using (var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser)))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync();
        }

        await Waiting.WaitUntilAsync(
            () => Task.FromResult(proxy.Logs.Lines.Any(l => l.Contains(" closed: ", StringComparison.Ordinal))),
            Backends.Deadline,
            "the proxy logs the session's close");
        string closed = Assert.Single(proxy.Logs.Lines, l => l.Contains(" closed: ", StringComparison.Ordinal));
        Assert.EndsWith("(client terminated)", closed, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_open_and_close_lines_name_the_client_user_database_and_bytes()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        string client;
        await using (RawPgClient raw = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port))
        {
            client = $"127.0.0.1:{((IPEndPoint)raw.Socket.LocalEndPoint!).Port}";
            await raw.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);
            await raw.SendAsync(RawPgClient.Query("SELECT 1"));
            await raw.ReadUntilReadyAsync();
            await raw.SendAsync(RawPgClient.Message('X', []));
            Assert.True(await raw.IsClosedByPeerAsync());
        }

        await Waiting.WaitUntilAsync(
            () => Task.FromResult(proxy.Logs.Lines.Any(l => l.Contains(" closed: ", StringComparison.Ordinal))),
            Backends.Deadline,
            "the proxy logs the session's close");
        string opened = Assert.Single(proxy.Logs.Lines, l => l.Contains(" opened: ", StringComparison.Ordinal));
        string closed = Assert.Single(proxy.Logs.Lines, l => l.Contains(" closed: ", StringComparison.Ordinal));
        string identity = $"client {client}, user {PostgresServer.TrustUser}, database {PostgresServer.Database}";
        Assert.Contains(identity, opened, StringComparison.Ordinal);
        Assert.Contains(identity, closed, StringComparison.Ordinal);
        Match bytes = ByteCounts().Match(closed);
        Assert.True(bytes.Success, closed);
        Assert.True(long.Parse(bytes.Groups["up"].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, closed);
        Assert.True(long.Parse(bytes.Groups["down"].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, closed);
        Assert.EndsWith("(client terminated)", closed, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"(?<up>\d+) bytes from client, (?<down>\d+) bytes to client")]
    private static partial Regex ByteCounts();
}
