using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.TestSupport;

namespace PgProxy.EndToEnd.Tests.Packaging;

/// <summary>
/// packaging/pgproxy.yml, the file the .deb installs as /etc/pgproxy/pgproxy.yml, is valid, and so is its commented
/// plugin example once uncommented; checked on every machine, root or not (the package tests check the installed copy).
/// </summary>
public sealed class PackagedConfigurationTests
{
    private static string PackagedFile => Path.Combine(RepositoryRoot.Path, "packaging", "pgproxy.yml");

    [Fact]
    public async Task The_packaged_configuration_passes_check()
    {
        ProcessResult check = await ProxyProcess.RunToEndAsync("check", "--config", PackagedFile);

        Assert.True(check.Succeeded, check.ToString());
        Assert.Contains("listen 127.0.0.1:6432 -> upstream \"postgresql\" 127.0.0.1:5432", check.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Its_commented_tableau_hll_example_is_valid_once_uncommented()
    {
        string text = await File.ReadAllTextAsync(PackagedFile);
        string uncommented = text
            .Replace("# plugins:\n#   - tableau_hll", "plugins:\n  - tableau_hll", StringComparison.Ordinal)
            .Replace("    # intercept:\n    #   commands:\n    #     queries:\n    #       - plugin: tableau_hll\n    #         function: rewrite_query",
                "    intercept:\n      commands:\n        queries:\n          - plugin: tableau_hll\n            function: rewrite_query", StringComparison.Ordinal);
        Assert.NotEqual(text, uncommented);
        string folder = Path.Combine(Path.GetTempPath(), "pgproxy-packaged-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(folder);
        try
        {
            string file = Path.Combine(folder, "pgproxy.yml");
            await File.WriteAllTextAsync(file, uncommented);

            ProcessResult check = await ProxyProcess.RunToEndAsync("check", "--config", file);

            Assert.True(check.Succeeded, check.ToString());
            Assert.Contains("queries: tableau_hll.rewrite_query", check.StandardOutput, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
