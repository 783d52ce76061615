using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.Protocol.Authentication;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>
/// <c>limits.client-idle-timeout</c> inside an extended-protocol batch: after an error PostgreSQL skips everything until
/// the client's Sync and sends no ReadyForQuery, so a client that never sends the Sync keeps the server waiting. Those
/// sessions are ended with 57P05 like idle ones; a statement still running is not, and a Sync in time keeps the session.
/// Against the fixture's PostgreSQL, with the bytes written by hand (no driver sends an unsynced batch and stops).
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class ClientIdleAfterErrorTests(PostgresFixture fixture) : IAsyncLifetime
{
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(1);
    private readonly string authFile = Path.Combine(Path.GetTempPath(), $"pgproxy-idle-users-{Guid.NewGuid():N}.txt");

    public Task InitializeAsync() => Pooling.PoolingClients.WriteAuthFileAsync(fixture.Server, authFile);

    public Task DisposeAsync()
    {
        File.Delete(authFile);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_bad_parse_with_no_sync_then_silence_is_ended_with_57P05_after_client_idle_timeout_and_not_before()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, InstanceLimits.Default with { ClientIdleTimeout = IdleTimeout });
        await using RawPgClient client = await RawPgClient.ConnectTrustSessionAsync(proxy.Host, proxy.Port, "idle-bad-parse");

        await AssertEndedAfterErrorAsync(client, Parse("", "SELEKT 1"), "42601");
    }

    [Fact]
    public async Task A_bind_to_a_missing_statement_then_a_query_the_server_skips_is_ended_with_57P05()
    {
        // Only a Sync ends PostgreSQL's skipping: the Query after the error is never answered, so it must not count as
        // the end of the wait.
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, InstanceLimits.Default with { ClientIdleTimeout = IdleTimeout });
        await using RawPgClient client = await RawPgClient.ConnectTrustSessionAsync(proxy.Host, proxy.Port, "idle-bad-bind");

        await client.SendAsync([.. Bind("no_such_statement"), .. Execute()]);
        RawMessage error = await client.ReadMessageAsync(TimeSpan.FromSeconds(10));
        Assert.Equal('E', error.Code);
        Assert.Equal("26000", error.SqlState);
        await client.SendAsync(RawPgClient.Query("SELECT 'skipped'"));
        var clock = Stopwatch.StartNew();

        RawMessage ended = await client.ReadMessageAsync(TimeSpan.FromSeconds(10));

        Assert.Equal("57P05", ended.SqlState);
        Assert.True(clock.Elapsed >= IdleTimeout - TimeSpan.FromMilliseconds(50), $"ended {clock.Elapsed} after the client's last message, before the timeout");
        Assert.True(await client.IsClosedByPeerAsync(), "the proxy must close the connection after 57P05");
    }

    [Fact]
    public async Task A_bad_parse_then_a_sync_before_the_timeout_keeps_the_session_working()
    {
        // A longer timeout than the other tests': the Sync must reach the proxy before it, on a loaded machine too.
        TimeSpan timeout = IdleTimeout * 3;
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, InstanceLimits.Default with { ClientIdleTimeout = timeout });
        await using RawPgClient client = await RawPgClient.ConnectTrustSessionAsync(proxy.Host, proxy.Port, "idle-bad-parse-sync");

        await client.SendAsync(Parse("", "SELEKT 1"));
        Assert.Equal("42601", (await client.ReadMessageAsync(TimeSpan.FromSeconds(10))).SqlState);

        // Half the timeout passes with the server skipping to the Sync; the session must still be there.
        Assert.False(await client.IsClosedByPeerAsync(timeout / 2), "ended before client-idle-timeout");
        await client.SendAsync(Sync());
        List<RawMessage> synced = await client.ReadUntilReadyAsync();

        await client.SendAsync(RawPgClient.Query("SELECT 'still here'"));
        List<RawMessage> after = await client.ReadUntilReadyAsync();

        Assert.Equal('Z', synced[^1].Code);
        Assert.DoesNotContain(after, m => m.Code == 'E');
        Assert.Contains(after, m => m.Code == 'D' && Encoding.UTF8.GetString(m.Body).Contains("still here", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_extended_statement_running_longer_than_client_idle_timeout_after_an_error_is_not_ended()
    {
        // An error and its Sync first, so the session has been waiting after an error; then a statement that runs 2.5
        // times the timeout in a batch with a Flush and no Sync. The Flush makes PostgreSQL send the results as soon as
        // the statement ends, so they arrive only if the proxy left the statement alone.
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, InstanceLimits.Default with { ClientIdleTimeout = IdleTimeout });
        await using RawPgClient client = await RawPgClient.ConnectTrustSessionAsync(proxy.Host, proxy.Port, "idle-busy-extended");
        await client.SendAsync(Parse("", "SELEKT 1"));
        Assert.Equal("42601", (await client.ReadMessageAsync(TimeSpan.FromSeconds(10))).SqlState);
        await client.SendAsync(Sync());
        Assert.Equal('Z', (await client.ReadUntilReadyAsync())[^1].Code);

        var clock = Stopwatch.StartNew();
        await client.SendAsync([.. Parse("", "SELECT pg_sleep(2.5), 'done'"), .. Bind(""), .. Execute(), .. Flush()]);
        var result = new List<RawMessage>();
        while (result.Count == 0 || result[^1].Code is not ('C' or 'E'))
        {
            result.Add(await client.ReadMessageAsync(TimeSpan.FromSeconds(10)));
        }

        TimeSpan ran = clock.Elapsed;
        await client.SendAsync(Sync());
        List<RawMessage> synced = await client.ReadUntilReadyAsync();

        Assert.DoesNotContain(result, m => m.Code == 'E');
        Assert.Equal(['1', '2', 'D', 'C'], result.Select(m => m.Code));
        Assert.True(ran >= TimeSpan.FromSeconds(2.4), $"the statement took {ran}: it did not run past the timeout, so the test proves nothing");
        Assert.Equal('Z', synced[^1].Code);
    }

    [Fact]
    public async Task A_statement_running_longer_than_client_idle_timeout_after_a_failed_simple_query_is_not_ended()
    {
        // A failed simple Query is answered with an error and a ReadyForQuery, with no Sync: the ReadyForQuery alone
        // must end the wait that the error began, or the next statement would be counted as idle while it runs.
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, InstanceLimits.Default with { ClientIdleTimeout = IdleTimeout });
        await using RawPgClient client = await RawPgClient.ConnectTrustSessionAsync(proxy.Host, proxy.Port, "idle-busy-after-query-error");
        await client.SendAsync(RawPgClient.Query("SELEKT 1"));
        List<RawMessage> failed = await client.ReadUntilReadyAsync();

        await client.SendAsync(RawPgClient.Query("SELECT pg_sleep(2.5), 'done'"));
        List<RawMessage> result = await client.ReadUntilReadyAsync();

        Assert.Contains(failed, m => m.Code == 'E' && m.SqlState == "42601");
        Assert.DoesNotContain(result, m => m.Code == 'E');
        Assert.Contains(result, m => m.Code == 'D' && Encoding.UTF8.GetString(m.Body).Contains("done", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(PoolMode.Session)]
    [InlineData(PoolMode.Transaction)]
    public async Task A_pooled_session_left_after_a_bad_parse_with_no_sync_is_ended_with_57P05(PoolMode mode)
    {
        ProxyConfig config = TestConfigs.Relay(fixture.Server.Host, fixture.Server.Port, InstanceLimits.Default with { ClientIdleTimeout = IdleTimeout });
        InstanceConfig instance = config.Instances[0] with
        {
            Auth = new AuthConfig { AuthFile = authFile },
            Pool = new PoolConfig { Mode = mode, Size = 2, QueueTimeout = TimeSpan.FromSeconds(20) },
            UpstreamTls = new UpstreamTlsConfig { Mode = UpstreamTlsMode.Disable },
        };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config with { Instances = [instance] });
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port);
        await LogInMd5Async(client);

        await AssertEndedAfterErrorAsync(client, Parse("", "SELEKT 1"), "42601");
    }

    /// <summary>Sends <paramref name="batch"/> (no Sync), reads its error, then asserts 57P05 comes after the timeout and not before.</summary>
    private static async Task AssertEndedAfterErrorAsync(RawPgClient client, byte[] batch, string sqlState)
    {
        await client.SendAsync(batch);
        RawMessage error = await client.ReadMessageAsync(TimeSpan.FromSeconds(10));
        var clock = Stopwatch.StartNew();
        Assert.Equal('E', error.Code);
        Assert.Equal(sqlState, error.SqlState);

        RawMessage ended = await client.ReadMessageAsync(TimeSpan.FromSeconds(10));

        Assert.Equal('E', ended.Code);
        Assert.Equal("57P05", ended.SqlState);
        Assert.Equal("FATAL", ended.Fields()['S']);
        Assert.True(clock.Elapsed >= IdleTimeout - TimeSpan.FromMilliseconds(50), $"ended {clock.Elapsed} after the error, before the timeout");
        Assert.True(await client.IsClosedByPeerAsync(), "the proxy must close the connection after 57P05");
    }

    /// <summary>The md5 user's login, answered by the pooling proxy from the auth file.</summary>
    private static async Task LogInMd5Async(RawPgClient client)
    {
        await client.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", PostgresServer.Md5User), ("database", PostgresServer.Database)));
        RawMessage challenge = await client.ReadMessageAsync(TimeSpan.FromSeconds(10));
        Assert.Equal('R', challenge.Code);
        Assert.Equal(5, BinaryPrimitives.ReadInt32BigEndian(challenge.Body));
        string answer = PasswordMessages.Md5Response(PasswordMessages.Md5Verifier(PostgresServer.Md5User, PostgresServer.Md5Password), challenge.Body.AsSpan(4, 4));
        await client.SendAsync(RawPgClient.Message('p', Encoding.ASCII.GetBytes(answer + "\0")));
        List<RawMessage> login = await client.ReadUntilReadyAsync();
        Assert.DoesNotContain(login, m => m.Code == 'E');
        Assert.Equal('Z', login[^1].Code);
    }

    private static byte[] Parse(string name, string sql) =>
        RawPgClient.Message('P', [.. CString(name), .. CString(sql), 0, 0]);

    // No parameters, no result formats: every column in text.
    private static byte[] Bind(string statement) =>
        RawPgClient.Message('B', [.. CString(""), .. CString(statement), 0, 0, 0, 0, 0, 0]);

    private static byte[] Execute() => RawPgClient.Message('E', [.. CString(""), 0, 0, 0, 0]);

    private static byte[] Flush() => RawPgClient.Message('H', []);

    private static byte[] Sync() => RawPgClient.Message('S', []);

    private static byte[] CString(string text) => [.. Encoding.UTF8.GetBytes(text), 0];
}
