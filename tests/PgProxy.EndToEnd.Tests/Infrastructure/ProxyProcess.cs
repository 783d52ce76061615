using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>
/// The real <c>pgproxy</c> command as a child process, for what only a process shows: signals, exit codes,
/// log files and its own memory use.
/// </summary>
public sealed partial class ProxyProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartDeadline = TimeSpan.FromSeconds(30);
    private readonly Process process;
    private readonly StringBuilder output = new();
    private readonly Dictionary<string, int> ports = [];
    private int? consolePort;
    private readonly object gate = new();
    private readonly Changes outputChanges = new();

    private ProxyProcess(Process process)
    {
        this.process = process;
    }

    public int ProcessId => process.Id;

    /// <summary>Everything the process wrote to stdout and stderr so far.</summary>
    public string Output
    {
        get
        {
            lock (gate)
            {
                return output.ToString();
            }
        }
    }

    /// <summary>The built pgproxy next to the test assembly (the test project references the host project).</summary>
    public static string AssemblyPath => Path.Combine(AppContext.BaseDirectory, "pgproxy.dll");

    /// <summary>Runs <c>pgproxy ARGS</c> to completion, for commands such as <c>check</c> and <c>--version</c>.</summary>
    public static Task<ProcessResult> RunToEndAsync(params string[] arguments) =>
        ProcessRunner.RunAsync("dotnet", [AssemblyPath, .. arguments], TimeSpan.FromSeconds(60));

    /// <summary>
    /// Starts <c>pgproxy --config FILE</c> (with extra <paramref name="environment"/> variables) and waits until every
    /// instance in it reports its listening port, and the admin console its own when <paramref name="console"/>.
    /// </summary>
    public static async Task<ProxyProcess> StartAsync(string configFile, int instances, string? workingDirectory = null, IReadOnlyDictionary<string, string>? environment = null, bool console = false)
    {
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetDirectoryName(configFile)!,
        };
        startInfo.ArgumentList.Add(AssemblyPath);
        startInfo.ArgumentList.Add("--config");
        startInfo.ArgumentList.Add(configFile);
        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
        {
            startInfo.Environment[name] = value;
        }

        return await StartAsync(startInfo, instances, console);
    }

    /// <summary>
    /// Starts a pgproxy given as a whole command (an installed binary, or one run as another user) and waits until
    /// every instance reports its listening port, and the admin console its own when <paramref name="console"/>.
    /// </summary>
    public static async Task<ProxyProcess> StartAsync(ProcessStartInfo startInfo, int instances, bool console = false)
    {
        ArgumentNullException.ThrowIfNull(startInfo);
        startInfo.RedirectStandardOutput = true;
        startInfo.RedirectStandardError = true;
        startInfo.UseShellExecute = false;
        var proxy = new ProxyProcess(new Process { StartInfo = startInfo });
        proxy.process.EnableRaisingEvents = true;
        proxy.process.Exited += (_, _) => proxy.outputChanges.Announce();
        proxy.process.OutputDataReceived += (_, e) => proxy.OnLine(e.Data);
        proxy.process.ErrorDataReceived += (_, e) => proxy.OnLine(e.Data);
        proxy.process.Start();
        proxy.process.BeginOutputReadLine();
        proxy.process.BeginErrorReadLine();
        try
        {
            await proxy.outputChanges.WaitUntilAsync(
                () => (proxy.ListeningCount() >= instances && (!console || proxy.ConsoleListening)) || proxy.process.HasExited,
                StartDeadline,
                "pgproxy to listen");
            if (proxy.process.HasExited)
            {
                throw new InvalidOperationException($"pgproxy exited with {proxy.process.ExitCode}:\n{proxy.Output}");
            }
        }
        catch
        {
            await proxy.DisposeAsync();
            throw;
        }

        return proxy;
    }

    /// <summary>The port of the admin console's own listener (admin.listen), as it logged it.</summary>
    public int ConsolePort
    {
        get
        {
            lock (gate)
            {
                return consolePort ?? throw new InvalidOperationException("pgproxy logged no admin console listener");
            }
        }
    }

    private bool ConsoleListening
    {
        get
        {
            lock (gate)
            {
                return consolePort is not null;
            }
        }
    }

    public int PortOf(string instance)
    {
        lock (gate)
        {
            return ports[instance];
        }
    }

    /// <summary>An Npgsql connection string to <paramref name="instance"/> as the trust user, without pooling.</summary>
    public string NpgsqlConnectionString(string applicationName, string instance = "proxy") => TrustConnectionString(PortOf(instance), applicationName);

    /// <summary>
    /// An Npgsql connection string to 127.0.0.1:<paramref name="port"/> as the trust user, without pooling, and with one
    /// attempt per open (with SSL preferred, Npgsql tries a refused connection a second time).
    /// </summary>
    public static string TrustConnectionString(int port, string? applicationName = null) => new Npgsql.NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = port,
        Username = PostgresServer.TrustUser,
        Database = PostgresServer.Database,
        Pooling = false,
        Timeout = 20,
        ApplicationName = applicationName,
        SslMode = Npgsql.SslMode.Disable,
        GssEncryptionMode = Npgsql.GssEncryptionMode.Disable,
    }.ConnectionString;

    /// <summary>Sends a POSIX signal (SIGTERM, SIGINT, SIGHUP) to the process.</summary>
    public async Task SignalAsync(PosixSignal signal)
    {
        string name = signal switch
        {
            PosixSignal.SIGHUP => "HUP",
            PosixSignal.SIGINT => "INT",
            PosixSignal.SIGTERM => "TERM",
            _ => throw new ArgumentOutOfRangeException(nameof(signal)),
        };
        // bash's own kill: a minimal machine may have no /bin/kill.
        ProcessResult result = await ProcessRunner.RunAsync("bash", ["-c", $"kill -s {name} {process.Id.ToString(CultureInfo.InvariantCulture)}"], TimeSpan.FromSeconds(10));
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"kill -s {name} {process.Id} failed: {result.StandardError}");
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan deadline)
    {
        using var timeout = new CancellationTokenSource(deadline);
        await process.WaitForExitAsync(timeout.Token);
        return process.ExitCode;
    }

    public bool HasExited => process.HasExited;

    /// <summary>A field of /proc/PID/status as written, after its name: "Uid" gives the real, effective, saved and fs uids, tab-separated.</summary>
    public string StatusField(string field) =>
        File.ReadLines($"/proc/{process.Id}/status").FirstOrDefault(line => line.StartsWith(field + ":", StringComparison.Ordinal)) is { } line
            ? line[(field.Length + 1)..].Trim()
            : throw new InvalidOperationException($"{field} not in /proc/{process.Id}/status");

    /// <summary>A field of /proc/PID/status in kB, such as VmRSS (resident now) or VmHWM (the peak).</summary>
    public long StatusKilobytes(string field)
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

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
    }

    /// <summary>
    /// Returns once <paramref name="condition"/> holds for the output so far, or the process has exited (callers
    /// assert on <see cref="HasExited"/>); checked at each line, a TimeoutException naming <paramref name="what"/>
    /// after <paramref name="deadline"/>.
    /// </summary>
    public Task WaitForOutputAsync(Func<string, bool> condition, TimeSpan deadline, string what) =>
        outputChanges.WaitUntilAsync(() => condition(Output) || process.HasExited, deadline, what);

    private void OnLine(string? line)
    {
        if (line is null)
        {
            outputChanges.Announce();
            return;
        }

        lock (gate)
        {
            output.AppendLine(line);
            Match match = ListeningLine().Match(line);
            if (match.Success)
            {
                ports[match.Groups["name"].Value] = int.Parse(match.Groups["port"].Value, CultureInfo.InvariantCulture);
            }

            Match console = ConsoleListeningLine().Match(line);
            if (console.Success)
            {
                consolePort = int.Parse(console.Groups["port"].Value, CultureInfo.InvariantCulture);
            }
        }

        outputChanges.Announce();
    }

    private int ListeningCount()
    {
        lock (gate)
        {
            return ports.Count;
        }
    }

    [GeneratedRegex(@"Instance (?<name>\S+) listening on \S+:(?<port>\d+),")]
    private static partial Regex ListeningLine();

    [GeneratedRegex(@"Admin console listening on \S+:(?<port>\d+)$")]
    private static partial Regex ConsoleListeningLine();
}
