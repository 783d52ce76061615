namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>Where psql connects: a server or a proxy in front of one.</summary>
public sealed record PsqlTarget(string Host, int Port, string User, string Database, string? Password = null)
{
    /// <summary>The libpq keyword/value connection string (the password travels in PGPASSWORD instead).</summary>
    public string ToConnInfo() =>
        $"host={Quote(Host)} port={Port} user={Quote(User)} dbname={Quote(Database)}";

    private static string Quote(string value) =>
        "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";
}

/// <summary>How to run psql beyond where it connects.</summary>
public sealed record PsqlOptions
{
    /// <summary>Stop at the first error and exit with code 3 (<c>-v ON_ERROR_STOP=1</c>).</summary>
    public bool OnErrorStop { get; init; } = true;

    /// <summary>More arguments, e.g. <c>-At</c> for bare rows or <c>-c</c> with a command.</summary>
    public IReadOnlyList<string> Arguments { get; init; } = [];

    /// <summary>More environment, e.g. PGSSLMODE; a null value removes the variable.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; init; } = new Dictionary<string, string?>();

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>psql (libpq) as a separate process: a real client that is not our own code.</summary>
public static class Psql
{
    private static readonly Lazy<string> Executable = new(FindExecutable);

    /// <summary>psql from the newest installed PostgreSQL, else the one on PATH.</summary>
    public static string ExecutablePath => Executable.Value;

    /// <summary>
    /// Runs psql against <paramref name="target"/> with <paramref name="input"/> as its script on stdin,
    /// without reading ~/.psqlrc (<c>-X</c>). Inherited PG* variables are dropped so the machine's
    /// environment cannot redirect the connection.
    /// </summary>
    public static Task<ProcessResult> RunAsync(
        PsqlTarget target,
        string input,
        PsqlOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        options ??= new PsqlOptions();

        var arguments = new List<string>
        {
            "-X",
            "-v", "ON_ERROR_STOP=" + (options.OnErrorStop ? "1" : "0"),
            "-d", target.ToConnInfo(),
        };
        arguments.AddRange(options.Arguments);

        var environment = new Dictionary<string, string?>();
        foreach (var name in System.Environment.GetEnvironmentVariables().Keys.Cast<string>())
        {
            if (name.StartsWith("PG", StringComparison.Ordinal))
            {
                environment[name] = null;
            }
        }

        environment["PGPASSWORD"] = target.Password;
        environment["PGCONNECT_TIMEOUT"] = "10";
        foreach (var (name, value) in options.Environment)
        {
            environment[name] = value;
        }

        return ProcessRunner.RunAsync(
            ExecutablePath, arguments, options.Timeout, input, environment, cancellationToken: cancellationToken);
    }

    private static string FindExecutable()
    {
        var fromServerInstall = PostgresInstallation.TryFindBinDirectory() is { } binDirectory
            ? Path.Combine(binDirectory, "psql")
            : null;
        if (fromServerInstall is not null && File.Exists(fromServerInstall))
        {
            return fromServerInstall;
        }

        var pathDirectories = (System.Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        return pathDirectories.Select(directory => Path.Combine(directory, "psql")).FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException(
                "psql was not found in /usr/lib/postgresql/*/bin nor on PATH. " + PostgresInstallation.InstallHint);
    }
}
