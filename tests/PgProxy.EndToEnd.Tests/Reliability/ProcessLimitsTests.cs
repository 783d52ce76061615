using System.Globalization;
using System.Text;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>
/// What only the pgproxy process shows: its peak memory for one large intercepted message, and reloads under load.
/// </summary>
[Collection(SharedPostgres.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // /proc and signals
public sealed class ProcessLimitsTests(PostgresFixture fixture, ITestOutputHelper output)
{
    private const long MB = 1024 * 1024;

    /// <summary>
    /// One large Query through an instance with a query interceptor: above max-intercepted-size it is relayed
    /// undecoded, and the peak resident memory (VmHWM) grows by at most 3× the message. Below, it is decoded for the
    /// interceptor: measured at 11.7× on 2026-12-03 (issue 16 asks for 3×; not reached, see docs/reliability.md), so the
    /// bound here is 16×, to catch it getting worse.
    /// </summary>
    [Theory]
    [InlineData(50, 16, 3.0)]
    [InlineData(12, 16, 16.0)]
    public async Task The_peak_memory_for_one_large_intercepted_query_stays_bounded(int queryMegabytes, int limitMegabytes, double bound)
    {
        using ConfigDirectory directory = ConfigDirectory.Create(string.Create(CultureInfo.InvariantCulture, $$"""
            plugins: [block_ddl]
            settings:
              log-level: info
            instances:
              - listen: {name: proxy, host: 127.0.0.1, port: 0}
                redirect: {name: postgresql, host: {{fixture.Server.Host}}, port: {{fixture.Server.Port}} }
                limits: {max-intercepted-size: {{limitMegabytes}}MB }
                intercept:
                  commands:
                    queries: [{plugin: block_ddl, function: block_ddl}]
            """));
        Directory.CreateDirectory(Path.Combine(directory.Path, "plugins"));
        File.Copy(Path.Combine(PgProxy.TestSupport.RepositoryRoot.Path, "plugins", "examples", "block_ddl.cs"), Path.Combine(directory.Path, "plugins", "block_ddl.cs"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using RawPgClient client = await RawPgClient.ConnectTrustSessionAsync("127.0.0.1", proxy.PortOf("proxy"), "vmhwm");
        await client.SendAsync(RawPgClient.Query("SELECT 'warm-up'"));
        await client.ReadUntilReadyAsync();
        long baseline = proxy.StatusKilobytes("VmHWM");

        long padding = (queryMegabytes * MB) - 64;
        byte[] query = RawPgClient.Query("SELECT length('" + new string('x', (int)padding) + "')");
        await client.SendAsync(query);
        List<RawMessage> result = await client.ReadUntilReadyAsync();
        long peak = proxy.StatusKilobytes("VmHWM");

        double grownMegabytes = (peak - baseline) / 1024.0;
        double ratio = grownMegabytes * MB / query.Length;
        output.WriteLine($"query {query.Length / (double)MB:0.0} MB, max-intercepted-size {limitMegabytes} MB: VmHWM {baseline / 1024.0:0} MB -> {peak / 1024.0:0} MB, +{grownMegabytes:0} MB = {ratio:0.00} x the message");
        Assert.Contains(result, m => m.Code == 'D' && Encoding.ASCII.GetString(m.Body).Contains(padding.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
        Assert.True(ratio <= bound, $"the peak grew by {ratio:0.00} x the message ({baseline} kB -> {peak} kB)");
    }

    /// <summary>100 SIGHUPs, each waited for, while pgbench runs through the proxy: no client error.</summary>
    [Fact]
    public async Task A_hundred_reloads_during_pgbench_cost_no_client_an_error()
    {
        const int Reloads = 100;
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        string script = Path.Combine(directory.Path, "select.sql");
        File.WriteAllText(script, "SELECT 1;\n");
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        string pgbench = Path.Combine(PostgresInstallation.FindBinDirectory(), "pgbench");
        Task<ProcessResult> bench = ProcessRunner.RunAsync(
            pgbench,
            ["-n", "-f", script, "-c", "4", "-j", "2", "-T", "20", "-h", "127.0.0.1", "-p", proxy.PortOf("proxy").ToString(CultureInfo.InvariantCulture), "-U", PostgresServer.TrustUser, PostgresServer.Database],
            TimeSpan.FromSeconds(90));

        for (int i = 1; i <= Reloads && !bench.IsCompleted; i++)
        {
            await proxy.SignalAsync(System.Runtime.InteropServices.PosixSignal.SIGHUP);
            string generation = string.Create(CultureInfo.InvariantCulture, $"generation {i + 1})");
            await proxy.WaitForOutputAsync(o => o.Contains(generation, StringComparison.Ordinal), TimeSpan.FromSeconds(20), $"reload {i}");
        }

        ProcessResult result = await bench;
        int applied = Enumerable.Range(2, Reloads).Count(g => proxy.Output.Contains($"generation {g})", StringComparison.Ordinal));
        output.WriteLine($"{applied} reloads during pgbench; pgbench: {result.StandardOutput.Split('\n').FirstOrDefault(l => l.Contains("failed", StringComparison.Ordinal))}");
        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(Reloads, applied);
        Assert.Contains("number of failed transactions: 0", result.StandardOutput, StringComparison.Ordinal);
        Assert.False(proxy.HasExited, proxy.Output);
    }
}
