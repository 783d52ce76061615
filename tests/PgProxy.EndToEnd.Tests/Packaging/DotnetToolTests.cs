using System.Runtime.InteropServices;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Packaging;

/// <summary>The dotnet tool that scripts/package.sh packs: installed from artifacts/, it is a working pgproxy command.</summary>
[Collection(SharedPackage.Name)]
public sealed class DotnetToolTests(PackageFixture package)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Installed_from_the_artifacts_folder_it_reports_its_version_and_finds_its_built_in_plugin()
    {
        string root = Path.Combine(Path.GetTempPath(), "pgproxy-tool-" + Guid.NewGuid().ToString("N")[..12]);
        string toolPath = Path.Combine(root, "tools");
        try
        {
            // A package folder of its own: a pgproxy of the same version cached by an earlier run must not stand in.
            var environment = new Dictionary<string, string?> { ["NUGET_PACKAGES"] = Path.Combine(root, "packages"), ["DOTNET_ROOT"] = DotnetRoot() };
            ProcessResult install = await ProcessRunner.RunAsync(
                "dotnet",
                ["tool", "install", "pgproxy", "--tool-path", toolPath, "--add-source", package.Artifacts, "--version", package.Version],
                CommandTimeout,
                environment: environment);
            Assert.True(install.Succeeded, install.ToString());

            string pgproxy = Path.Combine(toolPath, "pgproxy");
            ProcessResult version = await ProcessRunner.RunAsync(pgproxy, ["--version"], CommandTimeout, environment: environment);
            Assert.True(version.Succeeded, version.ToString());
            Assert.StartsWith(package.Version, version.StandardOutput.Trim(), StringComparison.Ordinal);

            string config = Path.Combine(root, "config.yml");
            await File.WriteAllTextAsync(config, """
                plugins:
                  - tableau_hll
                instances:
                  - listen: {name: proxy, host: 127.0.0.1, port: 6432}
                    redirect: {name: postgresql, host: 127.0.0.1, port: 5432}
                    intercept:
                      commands:
                        queries:
                          - plugin: tableau_hll
                            function: rewrite_query
                """);
            ProcessResult check = await ProcessRunner.RunAsync(pgproxy, ["check", "--config", config], CommandTimeout, environment: environment);
            Assert.True(check.Succeeded, check.ToString());
            Assert.Contains("plugin \"tableau_hll\": compiled assembly", check.StandardOutput, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    /// <summary>The .NET installation running the tests, for the tool's launcher to find its runtime.</summary>
    private static string DotnetRoot() =>
        Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root
            ? root
            : Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
}
