using System.Diagnostics;
using System.Globalization;
using System.Text;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>
/// The real <c>pgproxy</c> process for runs that are expected to end by themselves (a start-up that fails) or to be
/// signalled before they listen; optionally as another user (through <c>setpriv</c>), and with extra environment.
/// </summary>
public sealed class PgProxyRun : IAsyncDisposable
{
    private readonly Process process;
    private readonly StringBuilder output = new();
    private readonly Changes changes = new();

    private PgProxyRun(Process process)
    {
        this.process = process;
    }

    /// <summary>The uid/gid of the system's <c>nobody</c>: the unprivileged user the tests switch to when they run as root.</summary>
    public const int Nobody = 65534;

    public static bool IsRoot => Environment.IsPrivilegedProcess;

    public int ProcessId => process.Id;

    public string Output
    {
        get
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    public bool HasExited => process.HasExited;

    /// <summary>
    /// Starts <c>pgproxy --config FILE</c>; with <paramref name="asUser"/> through <c>setpriv</c> as that uid and gid
    /// (the caller must be root). <paramref name="prefix"/> is put before <c>dotnet</c> (<c>prlimit …</c>, say).
    /// </summary>
    public static PgProxyRun Start(string configFile, int? asUser = null, IReadOnlyList<string>? prefix = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var command = new List<string>();
        if (asUser is { } uid)
        {
            string id = uid.ToString(CultureInfo.InvariantCulture);
            command.AddRange(["setpriv", $"--reuid={id}", $"--regid={id}", "--clear-groups"]);
        }

        command.AddRange(prefix ?? []);
        command.AddRange(["dotnet", ProxyProcess.AssemblyPath, "--config", configFile]);
        var startInfo = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(configFile)!,
        };
        foreach (string argument in command.Skip(1))
        {
            startInfo.ArgumentList.Add(argument);
        }

        if (asUser is not null)
        {
            // nobody's home is /nonexistent; the runtime wants a writable one.
            startInfo.Environment["HOME"] = Path.GetTempPath();
            startInfo.Environment["DOTNET_CLI_HOME"] = Path.GetTempPath();
        }

        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
        {
            startInfo.Environment[name] = value;
        }

        var run = new PgProxyRun(new Process { StartInfo = startInfo, EnableRaisingEvents = true });
        run.process.OutputDataReceived += (_, e) => run.OnLine(e.Data);
        run.process.ErrorDataReceived += (_, e) => run.OnLine(e.Data);
        run.process.Exited += (_, _) => run.changes.Announce();
        run.process.Start();
        run.process.BeginOutputReadLine();
        run.process.BeginErrorReadLine();
        return run;
    }

    /// <summary>Runs pgproxy until it exits by itself; its exit code and everything it wrote.</summary>
    public static async Task<(int ExitCode, string Output)> RunToExitAsync(string configFile, int? asUser = null, TimeSpan? deadline = null)
    {
        await using PgProxyRun run = Start(configFile, asUser);
        int exitCode = await run.WaitForExitAsync(deadline ?? TimeSpan.FromSeconds(60));
        return (exitCode, run.Output);
    }

    public Task WaitForOutputAsync(Func<string, bool> condition, TimeSpan deadline, string what) =>
        changes.WaitUntilAsync(() => condition(Output) || process.HasExited, deadline, what);

    public async Task<int> WaitForExitAsync(TimeSpan deadline)
    {
        using var timeout = new CancellationTokenSource(deadline);
        await process.WaitForExitAsync(timeout.Token);
        return process.ExitCode;
    }

    public async Task SignalAsync(string signal)
    {
        ProcessResult result = await ProcessRunner.RunAsync("bash", ["-c", $"kill -s {signal} {process.Id.ToString(CultureInfo.InvariantCulture)}"], TimeSpan.FromSeconds(10));
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"kill -s {signal} failed: {result}");
        }
    }

    /// <summary>A field of /proc/PID/status in kB (VmRSS, VmHWM), or a count (Threads).</summary>
    public long Status(string field)
    {
        foreach (string line in File.ReadLines($"/proc/{process.Id}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"{field} not in /proc/{process.Id}/status");
    }

    /// <summary>The descriptors the process has open now.</summary>
    public int OpenDescriptors => Directory.GetFileSystemEntries($"/proc/{process.Id}/fd").Length;

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is not null)
        {
            lock (output)
            {
                output.AppendLine(line);
            }
        }

        changes.Announce();
    }
}

/// <summary>A fact that needs root (to switch to an unprivileged user); skipped, saying so, otherwise.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!PgProxyRun.IsRoot)
        {
            Skip = "needs root, to run pgproxy as the unprivileged user nobody with setpriv";
        }
    }
}

/// <summary>A fact that binds a privileged port as nobody: needs root, and a host where some ports are privileged.</summary>
public sealed class PrivilegedPortFactAttribute : FactAttribute
{
    public PrivilegedPortFactAttribute()
    {
        if (!PgProxyRun.IsRoot)
        {
            Skip = "needs root, to run pgproxy as the unprivileged user nobody with setpriv";
        }
        else if (FirstUnprivilegedPort == 0)
        {
            Skip = "net.ipv4.ip_unprivileged_port_start is 0: no port is privileged on this host";
        }
    }

    /// <summary>net.ipv4.ip_unprivileged_port_start: ports below it need CAP_NET_BIND_SERVICE.</summary>
    public static int FirstUnprivilegedPort =>
        int.Parse(File.ReadAllText("/proc/sys/net/ipv4/ip_unprivileged_port_start").Trim(), System.Globalization.CultureInfo.InvariantCulture);
}
