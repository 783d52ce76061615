using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Npgsql;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Packaging;

/// <summary>
/// The pgproxy process tells its service manager how it is doing (sd_notify), as the packaged Type=notify unit needs:
/// READY=1 once it listens, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 when it drains, WATCHDOG=1 at
/// half of WATCHDOG_USEC. systemd is played by a datagram socket the test binds.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class SystemdNotifyTests(PostgresFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task READY_after_listening_RELOADING_and_READY_around_SIGHUP_and_STOPPING_on_SIGTERM()
    {
        await using FakeNotifySocket systemd = FakeNotifySocket.AtPath();
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, environment: Notify(systemd));

        await systemd.WaitUntilAsync(messages => messages.Any(m => m.GetValueOrDefault("READY") == "1"), Deadline, "READY=1");
        IReadOnlyDictionary<string, string> ready = systemd.Messages.First(m => m.ContainsKey("READY"));
        Assert.Equal("Listening: 1 instance(s)", ready["STATUS"]);
        // READY=1 means clients may connect: they can.
        await using (var connection = new NpgsqlConnection(proxy.NpgsqlConnectionString("notify-ready")))
        {
            await connection.OpenAsync();
        }

        long beforeReload = MonotonicMicroseconds();
        await proxy.SignalAsync(PosixSignal.SIGHUP);
        await systemd.WaitUntilAsync(messages => systemd.Count("READY", "1") == 2, Deadline, "READY=1 after the reload");

        var messages = systemd.Messages.ToList();
        int reloading = messages.FindIndex(m => m.ContainsKey("RELOADING"));
        Assert.True(reloading > 0, $"RELOADING=1 after the first READY=1: {systemd.Describe()}");
        Assert.Equal("1", messages[reloading]["RELOADING"]);
        Assert.True(messages.FindLastIndex(m => m.ContainsKey("READY")) > reloading, $"READY=1 after RELOADING=1: {systemd.Describe()}");
        // systemd 253+ wants CLOCK_MONOTONIC in microseconds with RELOADING=1: the same clock as this process's.
        long monotonic = long.Parse(messages[reloading]["MONOTONIC_USEC"], CultureInfo.InvariantCulture);
        Assert.InRange(monotonic, beforeReload, MonotonicMicroseconds());

        await proxy.SignalAsync(PosixSignal.SIGTERM);
        await systemd.WaitUntilAsync(messages => messages.Any(m => m.GetValueOrDefault("STOPPING") == "1"), Deadline, "STOPPING=1");
        Assert.Equal(0, await proxy.WaitForExitAsync(Deadline));
        Assert.Equal("1", systemd.Messages[^1].GetValueOrDefault("STOPPING"));
    }

    [Fact]
    public async Task A_reload_that_fails_still_ends_with_READY()
    {
        await using FakeNotifySocket systemd = FakeNotifySocket.AtPath();
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, environment: Notify(systemd));
        await systemd.WaitUntilAsync(messages => systemd.Count("READY", "1") == 1, Deadline, "READY=1");

        await File.WriteAllTextAsync(directory.ConfigFile, "instances: [nonsense\n");
        await proxy.SignalAsync(PosixSignal.SIGHUP);

        await systemd.WaitUntilAsync(messages => systemd.Count("READY", "1") == 2, Deadline, "READY=1 after the failed reload");
        Assert.Equal(1, systemd.Count("RELOADING", "1"));
        await proxy.WaitForOutputAsync(output => output.Contains("Reload failed", StringComparison.Ordinal), Deadline, "the failed reload logged");
        Assert.False(proxy.HasExited, proxy.Output);
    }

    [Fact]
    public async Task An_abstract_NOTIFY_SOCKET_name_gets_READY()
    {
        await using FakeNotifySocket systemd = FakeNotifySocket.Abstract();
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, environment: Notify(systemd));

        await systemd.WaitUntilAsync(messages => messages.Any(m => m.GetValueOrDefault("READY") == "1"), Deadline, "READY=1 on an abstract socket");
        Assert.Contains($"Service manager notified through {systemd.Name}", proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_watchdog_is_answered_at_half_of_WATCHDOG_USEC()
    {
        await using FakeNotifySocket systemd = FakeNotifySocket.AtPath();
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        var environment = new Dictionary<string, string>(Notify(systemd)) { ["WATCHDOG_USEC"] = "400000" };
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, environment: environment);

        var clock = Stopwatch.StartNew();
        await systemd.WaitUntilAsync(messages => systemd.Count("WATCHDOG", "1") >= 4, Deadline, "four WATCHDOG=1");
        // Four pings at 0.2 s apart take at least 0.6 s: they are paced, not sent in a burst.
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(500), $"four pings in {clock.Elapsed}");
        Assert.Contains("Watchdog: telling the service manager every 0.2 s", proxy.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_NOTIFY_SOCKET_nothing_is_notified()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, environment: new Dictionary<string, string> { ["NOTIFY_SOCKET"] = "", ["WATCHDOG_USEC"] = "400000" });

        await proxy.SignalAsync(PosixSignal.SIGTERM);
        Assert.Equal(0, await proxy.WaitForExitAsync(Deadline));
        Assert.DoesNotContain("Service manager notified", proxy.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Watchdog", proxy.Output, StringComparison.Ordinal);
    }

    private static Dictionary<string, string> Notify(FakeNotifySocket systemd) => new() { ["NOTIFY_SOCKET"] = systemd.Name };

    /// <summary>CLOCK_MONOTONIC in microseconds, as the stopwatch reads it on Linux.</summary>
    private static long MonotonicMicroseconds() => (long)(Stopwatch.GetTimestamp() * (1_000_000.0 / Stopwatch.Frequency));
}
