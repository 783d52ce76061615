using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace PgProxy.Host.Service;

/// <summary>
/// Tells systemd how the service is doing (<c>sd_notify</c>, the <c>Type=notify</c> protocol): one datagram of
/// <c>KEY=VALUE</c> lines to the Unix socket named by <c>NOTIFY_SOCKET</c> (a path, or an abstract name written with a
/// leading <c>@</c>). Without <c>NOTIFY_SOCKET</c> every call does nothing, so a PgProxy run by hand or by another
/// supervisor pays nothing. A message that cannot be sent is logged and never fails the proxy: a service manager that
/// went away must not stop the sessions.
/// </summary>
internal sealed class SystemdNotifier : IDisposable
{
    public const string SocketVariable = "NOTIFY_SOCKET";
    public const string WatchdogUsecVariable = "WATCHDOG_USEC";
    public const string WatchdogPidVariable = "WATCHDOG_PID";

    private readonly ILogger logger;
    private readonly Socket? socket;
    private readonly UnixDomainSocketEndPoint? endpoint;
    private readonly string? socketName;
    private readonly Lock gate = new();
    private CancellationTokenSource? watchdog;
    private bool disposed;
    private bool stopping;

    private SystemdNotifier(ILogger logger, string? socketName, TimeSpan? watchdogInterval)
    {
        this.logger = logger;
        this.socketName = socketName;
        WatchdogInterval = watchdogInterval;
        if (socketName is null)
        {
            return;
        }

        // An abstract socket (Linux) has no file: systemd writes its name with '@' for the leading NUL byte.
        endpoint = new UnixDomainSocketEndPoint(socketName[0] == '@' ? "\0" + socketName[1..] : socketName);
        socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    /// <summary>True when a service manager listens (<c>NOTIFY_SOCKET</c> is set).</summary>
    public bool Enabled => socket is not null;

    /// <summary>How often <c>WATCHDOG=1</c> is sent: half of <c>WATCHDOG_USEC</c>, as sd_watchdog_enabled(3) advises; null when no watchdog is asked for.</summary>
    public TimeSpan? WatchdogInterval { get; }

    /// <summary>The notifier the environment asks for; <c>NOTIFY_SOCKET</c> unset (or empty) gives one that does nothing.</summary>
    public static SystemdNotifier FromEnvironment(ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        string? name = Environment.GetEnvironmentVariable(SocketVariable);
        if (string.IsNullOrEmpty(name) || (name[0] != '/' && name[0] != '@'))
        {
            return new SystemdNotifier(logger, null, null);
        }

        ServiceLog.Notifying(logger, name);
        return new SystemdNotifier(logger, name, WatchdogFromEnvironment());
    }

    /// <summary>READY=1: every instance listens (or a reload is over).</summary>
    /// <remarks>Nothing once <see cref="Stopping"/> was sent: a reload that ends during the stop does not undo it.</remarks>
    /// <param name="status">STATUS=, shown by systemctl status.</param>
    /// <param name="mainProcess">
    /// Also MAINPID= this process: after <c>--takeover</c>, the process that took over is the service's main process
    /// (systemd accepts it from a process other than the main one only with <c>NotifyAccess=all</c>).
    /// </param>
    public void Ready(string status, bool mainProcess = false)
    {
        if (!Volatile.Read(ref stopping))
        {
            Send(mainProcess
                ? string.Create(CultureInfo.InvariantCulture, $"MAINPID={Environment.ProcessId}\nREADY=1\nSTATUS={status}")
                : $"READY=1\nSTATUS={status}");
        }
    }

    /// <summary>
    /// RELOADING=1 with the CLOCK_MONOTONIC time in microseconds, which systemd 253 and later require with
    /// <c>Type=notify-reload</c> (and older ones ignore): a READY=1 must follow once the reload is over.
    /// </summary>
    public void Reloading() => Send(string.Create(CultureInfo.InvariantCulture, $"RELOADING=1\nMONOTONIC_USEC={MonotonicMicroseconds()}\nSTATUS=Reloading the configuration"));

    /// <summary>STOPPING=1: the proxy drains its sessions and exits.</summary>
    public void Stopping()
    {
        Volatile.Write(ref stopping, true);
        StopWatchdog();
        Send("STOPPING=1\nSTATUS=Draining sessions");
    }

    /// <summary>Sends WATCHDOG=1 every <see cref="WatchdogInterval"/> until <see cref="StopWatchdog"/> or dispose; does nothing without a watchdog.</summary>
    public void StartWatchdog()
    {
        if (WatchdogInterval is not { } interval || socket is null)
        {
            return;
        }

        lock (gate)
        {
            if (watchdog is not null || disposed)
            {
                return;
            }

            watchdog = new CancellationTokenSource();
            CancellationToken token = watchdog.Token;
            ServiceLog.WatchdogStarted(logger, interval.TotalSeconds);
            _ = Task.Run(() => PingAsync(interval, token), CancellationToken.None);
        }
    }

    /// <summary>Stops the watchdog pings (at shutdown, systemd's stop timeout applies instead).</summary>
    public void StopWatchdog()
    {
        lock (gate)
        {
            watchdog?.Cancel();
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            if (disposed)
            {
                return;
            }

            disposed = true;
            watchdog?.Cancel();
            watchdog?.Dispose();
            socket?.Dispose();
        }
    }

    /// <summary>CLOCK_MONOTONIC in microseconds: on Linux the stopwatch reads that clock (in nanoseconds).</summary>
    internal static long MonotonicMicroseconds() => (long)(Stopwatch.GetTimestamp() * (1_000_000.0 / Stopwatch.Frequency));

    private static TimeSpan? WatchdogFromEnvironment()
    {
        string? usec = Environment.GetEnvironmentVariable(WatchdogUsecVariable);
        if (!long.TryParse(usec, NumberStyles.None, CultureInfo.InvariantCulture, out long microseconds) || microseconds <= 0)
        {
            return null;
        }

        // WATCHDOG_PID names the process the watchdog is meant for; a child that inherited the variables is not it.
        string? pid = Environment.GetEnvironmentVariable(WatchdogPidVariable);
        if (!string.IsNullOrEmpty(pid) && pid != Environment.ProcessId.ToString(CultureInfo.InvariantCulture))
        {
            return null;
        }

        return TimeSpan.FromMicroseconds(microseconds / 2.0);
    }

    private async Task PingAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            // One at once: the first interval must not pass without a ping.
            do
            {
                Send("WATCHDOG=1");
            }
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
            // Stopped: the service is stopping or the notifier is disposed.
        }
    }

    private void Send(string message)
    {
        if (socket is null || endpoint is null)
        {
            return;
        }

        try
        {
            lock (gate)
            {
                if (disposed)
                {
                    return;
                }

                socket.SendTo(Encoding.UTF8.GetBytes(message), SocketFlags.None, endpoint);
            }
        }
        catch (SocketException e)
        {
            string first = message.Split('\n')[0];
            ServiceLog.NotifyFailed(logger, first, socketName ?? "", e.Message);
        }
    }
}
