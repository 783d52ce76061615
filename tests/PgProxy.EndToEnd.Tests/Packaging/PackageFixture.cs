using System.Text.RegularExpressions;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.TestSupport;

namespace PgProxy.EndToEnd.Tests.Packaging;

/// <summary>
/// What scripts/package.sh built, once per test run: scripts/test.sh builds it before the tests and names the folder in
/// PGPROXY_PACKAGE_ARTIFACTS; a test run without it (one test class run by hand) runs package.sh itself, which takes
/// minutes. Also installs and removes the .deb for the tests that need it installed, and purges it at the end.
/// </summary>
public sealed partial class PackageFixture : IAsyncLifetime
{
    public const string ArtifactsVariable = "PGPROXY_PACKAGE_ARTIFACTS";
    private static readonly TimeSpan PackageTimeout = TimeSpan.FromMinutes(25);
    private static readonly TimeSpan AptTimeout = TimeSpan.FromMinutes(5);
    private bool installed;
    private bool everInstalled;

    public string Artifacts { get; private set; } = "";

    /// <summary>The version in the artifacts' names (no pre-release suffix).</summary>
    public string Version { get; private set; } = "";

    public string DebFile => Path.Combine(Artifacts, $"pgproxy_{Version}_amd64.deb");

    public string NupkgFile => Path.Combine(Artifacts, $"pgproxy.{Version}.nupkg");

    public async Task InitializeAsync()
    {
        string? given = Environment.GetEnvironmentVariable(ArtifactsVariable);
        if (!string.IsNullOrEmpty(given))
        {
            Artifacts = given;
        }
        else
        {
            ProcessResult built = await ProcessRunner.RunAsync("bash", [Path.Combine(RepositoryRoot.Path, "scripts", "package.sh")], PackageTimeout, workingDirectory: RepositoryRoot.Path);
            if (!built.Succeeded)
            {
                throw new InvalidOperationException($"scripts/package.sh failed:\n{built}");
            }

            Artifacts = Path.Combine(RepositoryRoot.Path, "artifacts");
        }

        string nupkg = Directory.EnumerateFiles(Artifacts, "pgproxy.*.nupkg").SingleOrDefault()
            ?? throw new InvalidOperationException($"no pgproxy.VERSION.nupkg in {Artifacts}");
        Version = NupkgVersion().Match(Path.GetFileName(nupkg)).Groups["version"].Value;
        if (Version.Length == 0)
        {
            throw new InvalidOperationException($"{nupkg}: not named pgproxy.MAJOR.MINOR.PATCH.nupkg");
        }
    }

    /// <summary>Installs the .deb with apt, as an operator would (once; again after <see cref="RemoveAsync"/>).</summary>
    public async Task EnsureInstalledAsync()
    {
        // The tests of one collection run one at a time: no two install at once.
        if (installed)
        {
            return;
        }

        ProcessResult result = await AptAsync("install", "-y", DebFile);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"apt-get install {DebFile} failed:\n{result}");
        }

        installed = true;
        everInstalled = true;
    }

    /// <summary><c>apt-get remove pgproxy</c>: the result, for the test to check.</summary>
    public async Task<ProcessResult> RemoveAsync()
    {
        installed = false;
        return await AptAsync("remove", "-y", "pgproxy");
    }

    public async Task DisposeAsync()
    {
        // The machine is left as it was: no pgproxy package, configuration, logs or user's files.
        if (everInstalled)
        {
            await AptAsync("purge", "-y", "pgproxy");
        }
    }

    private static Task<ProcessResult> AptAsync(params string[] arguments) =>
        ProcessRunner.RunAsync(
            "apt-get",
            ["-q", "-o", "DPkg::Lock::Timeout=240", .. arguments],
            AptTimeout,
            environment: new Dictionary<string, string?> { ["DEBIAN_FRONTEND"] = "noninteractive" });

    [GeneratedRegex(@"^pgproxy\.(?<version>\d+\.\d+\.\d+)\.nupkg$")]
    private static partial Regex NupkgVersion();
}

/// <summary>The package tests share one build of the artifacts, and a PostgreSQL to relay to.</summary>
[CollectionDefinition(Name)]
public sealed class SharedPackage : ICollectionFixture<PackageFixture>, ICollectionFixture<PostgresFixture>
{
    public const string Name = "package";
}

/// <summary>
/// A test that installs a Debian package into the machine: it runs as root on a Debian system with apt (as CI does),
/// and is skipped, saying why, anywhere else.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class DebianRootFactAttribute : FactAttribute
{
    public DebianRootFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || !IsRoot())
        {
            Skip = "installs the .deb into this machine: runs only as root (CI runs the tests as root)";
        }
        else if (!File.Exists("/usr/bin/apt-get") || !File.Exists("/usr/bin/dpkg"))
        {
            Skip = "installs the .deb with apt-get: not a Debian system";
        }
    }

    /// <summary>The effective user id is 0: the second number of the Uid line of /proc/self/status.</summary>
    public static bool IsRoot() =>
        File.ReadLines("/proc/self/status").FirstOrDefault(line => line.StartsWith("Uid:", StringComparison.Ordinal)) is { } uid
        && uid.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) is [_, _, "0", ..];
}
