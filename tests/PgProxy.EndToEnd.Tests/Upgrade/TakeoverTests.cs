using System.Collections.Concurrent;
using System.Diagnostics;
using Npgsql;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Upgrade;

/// <summary>
/// <c>pgproxy --takeover</c>: a new process takes the listening sockets of the running one, which stops accepting only
/// once the new one accepts, then drains its sessions and exits. No client connecting meanwhile is refused.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class TakeoverTests(PostgresFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Connections_across_a_takeover_are_all_served_and_an_open_transaction_finishes_in_the_old_process()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server, "  shutdown-timeout: 20s"));
        await using ProxyProcess old = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        int port = old.PortOf("proxy");
        string connectionString = ProxyProcess.TrustConnectionString(port, "takeover-loop");

        // A session in a transaction across the hand-over: the old process serves it until its transaction ends.
        await using var open = new NpgsqlConnection(ProxyProcess.TrustConnectionString(port, "takeover-open"));
        await open.OpenAsync();
        await using NpgsqlTransaction transaction = await open.BeginTransactionAsync();
        Assert.Equal(1, await ScalarAsync(open, "SELECT 1"));

        using var loop = new ConnectionLoop(connectionString, workers: 4);
        await Waiting.WaitUntilAsync(() => Task.FromResult(loop.Served >= 20), Deadline, "the loop is served by the old process");

        await using ProxyProcess next = await ProxyProcess.StartAsync(TakeoverStart(directory), instances: 1);
        Assert.Equal(port, next.PortOf("proxy"));
        await next.WaitForOutputAsync(output => output.Contains("Hand-over complete", StringComparison.Ordinal), Deadline, "the old process releases the sockets");
        Assert.Contains("Hand-over complete", next.Output, StringComparison.Ordinal);

        // The old process stopped accepting but still serves the open transaction, to its end.
        long servedAtHandOver = loop.Served;
        Assert.Equal(2, await ScalarAsync(open, "SELECT 2"));
        Assert.False(old.HasExited, "the old process waits for the open transaction");
        await Waiting.WaitUntilAsync(() => Task.FromResult(loop.Served >= servedAtHandOver + 20), Deadline, "the loop is served after the hand-over");
        await transaction.CommitAsync();
        Assert.Equal(0, await old.WaitForExitAsync(Deadline));
        Assert.Contains("accepts on the listening sockets; this process stopped accepting", old.Output, StringComparison.Ordinal);

        // With the old process gone, the new one serves every connection.
        long servedAtExit = loop.Served;
        await Waiting.WaitUntilAsync(() => Task.FromResult(loop.Served >= servedAtExit + 20), Deadline, "the new process serves the loop");
        await loop.StopAsync();

        Assert.True(loop.Failures.IsEmpty, $"{loop.Failures.Count} of {loop.Served + loop.Failures.Count} connections failed; first: {loop.Failures.FirstOrDefault()}\nold:\n{old.Output}\nnew:\n{next.Output}");
        Assert.False(next.HasExited);
        await using var after = new NpgsqlConnection(connectionString);
        await after.OpenAsync();
        Assert.Equal(1, await ScalarAsync(after, "SELECT 1"));
    }

    [Fact]
    public async Task A_second_takeover_takes_over_from_the_process_that_took_over()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess first = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        int port = first.PortOf("proxy");
        await using ProxyProcess second = await ProxyProcess.StartAsync(TakeoverStart(directory), instances: 1);
        Assert.Equal(0, await first.WaitForExitAsync(Deadline));
        await second.WaitForOutputAsync(output => output.Contains("Hand-over: control socket", StringComparison.Ordinal), Deadline, "the new process listens on the control socket");

        await using ProxyProcess third = await ProxyProcess.StartAsync(TakeoverStart(directory), instances: 1);
        Assert.Equal(0, await second.WaitForExitAsync(Deadline));
        Assert.Equal(port, third.PortOf("proxy"));
        await using var connection = new NpgsqlConnection(ProxyProcess.TrustConnectionString(port, "takeover-third"));
        await connection.OpenAsync();
        Assert.Equal(1, await ScalarAsync(connection, "SELECT 1"));
    }

    [Fact]
    public async Task SIGUSR2_starts_a_successor_that_takes_over()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess old = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        int port = old.PortOf("proxy");
        await old.WaitForOutputAsync(output => output.Contains("Hand-over: control socket", StringComparison.Ordinal), Deadline, "the control socket listens");
        int successor = 0;
        try
        {
            ProcessResult kill = await ProcessRunner.RunAsync("bash", ["-c", $"kill -s USR2 {old.ProcessId}"], TimeSpan.FromSeconds(10));
            Assert.True(kill.Succeeded, kill.ToString());

            // The successor writes to the same output (it inherits it), and its pid is logged by the old process.
            await old.WaitForOutputAsync(output => SuccessorPid(output) is not null, Deadline, "the successor starts");
            successor = SuccessorPid(old.Output) ?? 0;
            // Not WaitForExitAsync: it also waits for the end of the output, which the successor holds open.
            await Waiting.WaitUntilAsync(() => Task.FromResult(old.HasExited), Deadline, "the old process exits after the hand-over");
            Assert.Contains("Hand-over complete", old.Output, StringComparison.Ordinal);

            await using var connection = new NpgsqlConnection(ProxyProcess.TrustConnectionString(port, "takeover-usr2"));
            await connection.OpenAsync();
            Assert.Equal(1, await ScalarAsync(connection, "SELECT 1"));
        }
        finally
        {
            if (successor != 0)
            {
                using Process process = Process.GetProcessById(successor);
                process.Kill();
                await process.WaitForExitAsync();
            }
        }
    }

    private static int? SuccessorPid(string output)
    {
        System.Text.RegularExpressions.Match match = System.Text.RegularExpressions.Regex.Match(output, "started process ([0-9]+) with --takeover");
        return match.Success ? int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : null;
    }

    [Fact]
    public async Task A_takeover_with_nothing_running_fails_with_exit_code_2_naming_the_control_socket()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        ProcessResult result = await ProcessRunner.RunAsync("dotnet", [ProxyProcess.AssemblyPath, "--config", directory.ConfigFile, "--takeover"], TimeSpan.FromSeconds(60));

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("no running PgProxy answers on its control socket", result.StandardOutput + result.StandardError, StringComparison.Ordinal);
    }

    private static ProcessStartInfo TakeoverStart(ConfigDirectory directory)
    {
        var startInfo = new ProcessStartInfo("dotnet") { WorkingDirectory = directory.Path };
        startInfo.ArgumentList.Add(ProxyProcess.AssemblyPath);
        startInfo.ArgumentList.Add("--config");
        startInfo.ArgumentList.Add(directory.ConfigFile);
        startInfo.ArgumentList.Add("--takeover");
        return startInfo;
    }

    private static async Task<int> ScalarAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (int)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Workers that each connect, run SELECT 1 and close, over and over, counting what was served and what failed.</summary>
    private sealed class ConnectionLoop : IDisposable
    {
        private readonly CancellationTokenSource stop = new();
        private readonly Task[] workers;
        private long served;

        public ConnectionLoop(string connectionString, int workers)
        {
            this.workers = [.. Enumerable.Range(0, workers).Select(_ => Task.Run(() => RunAsync(connectionString)))];
        }

        public long Served => Interlocked.Read(ref served);

        public ConcurrentQueue<string> Failures { get; } = new();

        public async Task StopAsync()
        {
            await stop.CancelAsync();
            await Task.WhenAll(workers);
        }

        public void Dispose()
        {
            stop.Cancel();
            stop.Dispose();
        }

        private async Task RunAsync(string connectionString)
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await using var connection = new NpgsqlConnection(connectionString);
                    await connection.OpenAsync(CancellationToken.None);
                    await using var command = new NpgsqlCommand("SELECT 1", connection);
                    if ((int)(await command.ExecuteScalarAsync(CancellationToken.None))! == 1)
                    {
                        Interlocked.Increment(ref served);
                    }
                }
                catch (Exception e) when (e is NpgsqlException or InvalidOperationException or IOException)
                {
                    Failures.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {e.GetType().Name}: {e.Message}");
                }
            }
        }
    }
}
