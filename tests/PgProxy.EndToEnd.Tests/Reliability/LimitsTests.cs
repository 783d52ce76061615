using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Npgsql;
using PgProxy.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.EndToEnd.Tests.Interception;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>
/// The limits that keep one client or one server from holding the proxy: client-idle-timeout, server-login-timeout and
/// max-intercepted-size, against the fixture's PostgreSQL (or a listener that never answers).
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class LimitsTests(PostgresFixture fixture)
{
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task An_idle_session_is_ended_with_FATAL_57P05_after_client_idle_timeout()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, InstanceLimits.Default with { ClientIdleTimeout = IdleTimeout });
        await using RawPgClient client = await RawPgClient.ConnectTrustSessionAsync(proxy.Host, proxy.Port, "idle-timeout");
        var clock = Stopwatch.StartNew();

        RawMessage message = await client.ReadMessageAsync(TimeSpan.FromSeconds(10));

        Assert.Equal('E', message.Code);
        Assert.Equal("57P05", message.SqlState);
        Assert.Equal("FATAL", message.Fields()['S']);
        Assert.True(clock.Elapsed >= IdleTimeout - TimeSpan.FromMilliseconds(50), $"ended after {clock.Elapsed}, before the timeout");
        Assert.True(await client.IsClosedByPeerAsync(), "the proxy must close the connection after 57P05");
    }

    [Fact]
    public async Task A_client_stalled_in_the_middle_of_a_message_is_ended_by_client_idle_timeout()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, InstanceLimits.Default with { ClientIdleTimeout = IdleTimeout });
        await using RawPgClient client = await RawPgClient.ConnectTrustSessionAsync(proxy.Host, proxy.Port, "idle-half-frame");
        byte[] query = RawPgClient.Query("SELECT 1");

        await client.SendAsync(query[..(query.Length / 2)]);
        RawMessage message = await client.ReadMessageAsync(TimeSpan.FromSeconds(10));

        Assert.Equal("57P05", message.SqlState);
    }

    [Fact]
    public async Task A_query_running_longer_than_client_idle_timeout_is_not_ended_and_the_session_goes_on()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, InstanceLimits.Default with { ClientIdleTimeout = IdleTimeout });
        await using RawPgClient client = await RawPgClient.ConnectTrustSessionAsync(proxy.Host, proxy.Port, "idle-busy");

        await client.SendAsync(RawPgClient.Query("SELECT pg_sleep(2.5), 'done'"));
        List<RawMessage> result = await client.ReadUntilReadyAsync();
        await client.SendAsync(RawPgClient.Query("SELECT 'still here'"));
        List<RawMessage> after = await client.ReadUntilReadyAsync();

        Assert.DoesNotContain(result, m => m.Code == 'E');
        Assert.Contains(result, m => m.Code == 'D');
        Assert.Contains(after, m => m.Code == 'D' && Encoding.UTF8.GetString(m.Body).Contains("still here", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_client_idle_timeout_an_idle_session_stays_open()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using RawPgClient client = await RawPgClient.ConnectTrustSessionAsync(proxy.Host, proxy.Port, "no-idle-timeout");

        Assert.False(await client.IsClosedByPeerAsync(TimeSpan.FromSeconds(2)), "no client-idle-timeout: the session must stay");
        await client.SendAsync(RawPgClient.Query("SELECT 1"));
        Assert.Equal('Z', (await client.ReadUntilReadyAsync())[^1].Code);
    }

    [Fact]
    public async Task A_server_that_accepts_and_never_answers_is_given_up_after_server_login_timeout()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        int silentPort = ((IPEndPoint)silent.LocalEndpoint).Port;
        var accepted = new List<Socket>();
        Task acceptAll = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    accepted.Add(await silent.AcceptSocketAsync());
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // The listener stopped.
            }
        });
        TimeSpan loginTimeout = TimeSpan.FromSeconds(1);
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(TestConfigs.Relay("127.0.0.1", silentPort, InstanceLimits.Default with { ServerLoginTimeout = loginTimeout }));
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        var clock = Stopwatch.StartNew();

        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)));
        RawMessage message = await client.ReadMessageAsync(TimeSpan.FromSeconds(15));
        TimeSpan elapsed = clock.Elapsed;

        Assert.Equal('E', message.Code);
        Assert.StartsWith("08", message.SqlState, StringComparison.Ordinal);
        Assert.True(elapsed >= loginTimeout - TimeSpan.FromMilliseconds(50) && elapsed < loginTimeout + TimeSpan.FromSeconds(3), $"answered after {elapsed}");
        Assert.True(await client.IsClosedByPeerAsync(), "the session must end");
        // redirect.tls prefer: the SSLRequest is the first thing the server leaves unanswered.
        Assert.Contains("timed out after 1 s (server-login-timeout)", message.Fields()['M'], StringComparison.Ordinal);
        silent.Stop();
        await acceptAll;
        accepted.ForEach(socket => socket.Dispose());
    }

    [Fact]
    public async Task A_server_that_never_finishes_the_login_is_closed_after_server_login_timeout_and_logged()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        int silentPort = ((IPEndPoint)silent.LocalEndpoint).Port;
        TimeSpan loginTimeout = TimeSpan.FromSeconds(1);
        ProxyConfig config = TestConfigs.Relay("127.0.0.1", silentPort, InstanceLimits.Default with { ServerLoginTimeout = loginTimeout });
        config = config with { Instances = [config.Instances[0] with { UpstreamTls = new UpstreamTlsConfig { Mode = UpstreamTlsMode.Disable } }] };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        Task<Socket> accepted = silent.AcceptSocketAsync();
        var clock = Stopwatch.StartNew();

        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.TrustUser), ("database", PostgresServer.Database)));
        using Socket server = await accepted;
        bool closed = await client.IsClosedByPeerAsync(TimeSpan.FromSeconds(15));
        TimeSpan elapsed = clock.Elapsed;

        Assert.True(closed, "the session must end");
        Assert.True(elapsed >= loginTimeout - TimeSpan.FromMilliseconds(50) && elapsed < loginTimeout + TimeSpan.FromSeconds(3), $"ended after {elapsed}");
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("sent no ReadyForQuery within server-login-timeout (1 s)", StringComparison.Ordinal));
        Assert.Equal(0, proxy.Server.ActiveSessions > 0 ? await WaitForNoSessionsAsync(proxy) : 0);
    }

    private static async Task<int> WaitForNoSessionsAsync(ProxyHarness proxy)
    {
        await Waiting.WaitUntilAsync(() => Task.FromResult(proxy.Server.ActiveSessions == 0), TimeSpan.FromSeconds(10), "the session to end");
        return proxy.Server.ActiveSessions;
    }

    [Fact]
    public async Task A_query_larger_than_max_intercepted_size_is_relayed_without_the_interceptors_and_logged()
    {
        DelegateQueryInterceptor interceptor = Interceptors.Replace("'small'", "'rewritten'");
        var interceptors = new InstanceInterceptors([new NamedInterceptor<IQueryInterceptor>("test.replace", interceptor)], [], TimeSpan.FromSeconds(5), null) { MaxInterceptedSize = 64 * 1024 };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, interceptors);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        string padding = new('x', 100_000);

        string? large = (string?)await new NpgsqlCommand($"SELECT 'small' || length('{padding}')", connection).ExecuteScalarAsync();
        string? small = (string?)await new NpgsqlCommand("SELECT 'small'", connection).ExecuteScalarAsync();

        Assert.Equal("small100000", large);
        Assert.Equal("rewritten", small);
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("larger than limits.max-intercepted-size (65536 bytes): relayed as it came", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_query_larger_than_max_intercepted_size_is_refused_with_54000_when_an_interceptor_refuses_on_error()
    {
        DelegateQueryInterceptor interceptor = Interceptors.Replace("'small'", "'rewritten'");
        var interceptors = new InstanceInterceptors([new NamedInterceptor<IQueryInterceptor>("test.replace", interceptor)], [], TimeSpan.FromSeconds(5), InterceptorFailurePolicy.Refuse) { MaxInterceptedSize = 64 * 1024 };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, interceptors);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        string padding = new('x', 100_000);

        PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => new NpgsqlCommand($"SELECT length('{padding}')", connection).ExecuteScalarAsync());
        string? after = (string?)await new NpgsqlCommand("SELECT 'small'", connection).ExecuteScalarAsync();

        Assert.Equal("54000", refused.SqlState);
        Assert.Contains("max-intercepted-size", refused.MessageText, StringComparison.Ordinal);
        Assert.Equal("rewritten", after);
    }
}
