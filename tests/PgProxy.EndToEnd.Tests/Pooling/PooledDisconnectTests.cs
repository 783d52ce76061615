using System.Diagnostics;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PgProxy.EndToEnd.Tests.Pooling;

/// <summary>
/// A pooled client killed while its statement runs: the server connection it was linked to is closed, not given back,
/// and PgProxy cancels the statement first, so that it does not run on (with its locks) for a client that is gone.
/// PostgreSQL would only notice the closed connection at the statement's next read or write, a minute later here.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class PooledDisconnectTests(PostgresFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly string authFile = Path.Combine(Path.GetTempPath(), $"pgproxy-pool-users-{Guid.NewGuid():N}.txt");

    public Task InitializeAsync() => PoolingClients.WriteAuthFileAsync(fixture.Server, authFile);

    public Task DisposeAsync()
    {
        File.Delete(authFile);
        return Task.CompletedTask;
    }

    [Theory]
    [InlineData(PoolMode.Session)]
    [InlineData(PoolMode.Transaction)]
    public async Task The_statement_of_a_pooled_client_killed_mid_query_is_cancelled_within_a_second(PoolMode mode)
    {
        ProxyConfig config = TestConfigs.Relay(fixture.Server.Host, fixture.Server.Port);
        InstanceConfig instance = config.Instances[0] with
        {
            Auth = new AuthConfig { AuthFile = authFile },
            Pool = new PoolConfig { Mode = mode, Size = 2 },
            UpstreamTls = new UpstreamTlsConfig { Mode = UpstreamTlsMode.Disable },
        };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config with { Instances = [instance] });
        string marker = $"left_{mode}_{Guid.NewGuid():N}";
        string running = $"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60) /* {marker} */%' AND state = 'active'";

        using var psql = new Process
        {
            StartInfo = new ProcessStartInfo(Psql.ExecutablePath)
            {
                ArgumentList = { "-X", "-h", proxy.Host, "-p", proxy.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", PostgresServer.ScramUser, "-d", PostgresServer.Database, "-c", $"SELECT pg_sleep(60) /* {marker} */" },
                Environment = { ["PGPASSWORD"] = PostgresServer.ScramPassword, ["PGSSLMODE"] = "disable" },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            },
        };
        psql.Start();
        try
        {
            await Waiting.WaitUntilAsync(async () => await fixture.Server.QueryAsSuperuserAsync(running) == "1", Deadline, "the pooled client's statement running on the server");
        }
        finally
        {
            psql.Kill();
            await psql.WaitForExitAsync();
        }

        var clock = Stopwatch.StartNew();
        await Waiting.WaitUntilAsync(async () => await fixture.Server.QueryAsSuperuserAsync(running) == "0", Deadline, "the statement of the killed client to end");
        TimeSpan ended = clock.Elapsed;
        output.WriteLine($"{mode}: the statement ended {ended.TotalMilliseconds:0} ms after its client was killed");
        Assert.True(ended <= Bound, $"the statement outlived its client by {ended}");
        await Waiting.WaitUntilAsync(() => Task.FromResult(proxy.Server.ActiveSessions == 0), Deadline, "the killed client's session to end in the proxy");
    }
}
