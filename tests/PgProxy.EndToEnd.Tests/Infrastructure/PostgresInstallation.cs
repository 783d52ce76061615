using System.Globalization;

namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>Where the machine's PostgreSQL programs are, and how to run them as a user PostgreSQL accepts.</summary>
public static class PostgresInstallation
{
    public const string InstallHint =
        "Install PostgreSQL and the hll extension: apt-get install postgresql postgresql-15-hll " +
        "(or run scripts/test.sh as root, which installs them).";

    /// <summary>The system user the server runs as when the tests run as root.</summary>
    public const string ServerSystemUser = "postgres";

    private const string DebianInstallRoot = "/usr/lib/postgresql";

    private static readonly string[] RunuserLocations = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"];

    /// <summary>PostgreSQL refuses to run as root: then initdb and the server run as <see cref="ServerSystemUser"/>.</summary>
    public static bool RunningAsRoot => Environment.IsPrivilegedProcess;

    /// <summary>The newest <c>/usr/lib/postgresql/N/bin</c> that has initdb, or null when none is installed.</summary>
    public static string? TryFindBinDirectory()
    {
        if (!Directory.Exists(DebianInstallRoot))
        {
            return null;
        }

        return Directory.GetDirectories(DebianInstallRoot)
            .Select(versionDirectory => (
                Version: ParseMajorVersion(Path.GetFileName(versionDirectory)),
                Bin: Path.Combine(versionDirectory, "bin")))
            .Where(candidate => candidate.Version is not null && File.Exists(Path.Combine(candidate.Bin, "initdb")))
            .OrderByDescending(candidate => candidate.Version)
            .Select(candidate => candidate.Bin)
            .FirstOrDefault();
    }

    public static string FindBinDirectory() =>
        TryFindBinDirectory() ?? throw new InvalidOperationException(
            $"No PostgreSQL server found: no {DebianInstallRoot}/*/bin/initdb. {InstallHint}");

    /// <summary>
    /// Runs a server-side program (initdb, pg_ctl) as <see cref="ServerSystemUser"/> when we are root,
    /// as ourselves otherwise.
    /// </summary>
    public static Task<ProcessResult> RunServerProgramAsync(
        string program,
        IReadOnlyList<string> arguments,
        string workingDirectory,
        TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        if (!RunningAsRoot)
        {
            return ProcessRunner.RunAsync(
                program, arguments, timeout, workingDirectory: workingDirectory, cancellationToken: cancellationToken);
        }

        var runuser = RunuserLocations.FirstOrDefault(File.Exists);
        if (runuser is not null)
        {
            return ProcessRunner.RunAsync(
                runuser,
                ["-u", ServerSystemUser, "--", program, .. arguments],
                timeout,
                workingDirectory: workingDirectory,
                cancellationToken: cancellationToken);
        }

        var commandLine = string.Join(' ', new[] { program }.Concat(arguments).Select(ShellQuote));
        return ProcessRunner.RunAsync(
            "su",
            [ServerSystemUser, "-s", "/bin/sh", "-c", commandLine],
            timeout,
            workingDirectory: workingDirectory,
            cancellationToken: cancellationToken);
    }

    /// <summary>Hands a directory we created to the server's system user (only needed as root).</summary>
    public static async Task GiveToServerUserAsync(string directory, CancellationToken cancellationToken)
    {
        if (!RunningAsRoot)
        {
            return;
        }

        var result = await ProcessRunner.RunAsync(
            "chown",
            ["-R", $"{ServerSystemUser}:{ServerSystemUser}", directory],
            TimeSpan.FromSeconds(30),
            cancellationToken: cancellationToken);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException(
                $"Could not give {directory} to the '{ServerSystemUser}' system user " +
                $"(PostgreSQL refuses to run as root and the tests run as root). {InstallHint}\n{result}");
        }
    }

    private static int? ParseMajorVersion(string name) =>
        int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var version) ? version : null;

    private static string ShellQuote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
