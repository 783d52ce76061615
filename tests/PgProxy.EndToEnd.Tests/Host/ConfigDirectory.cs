using System.Globalization;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>A temporary directory holding one <c>config.yml</c> for a pgproxy process; deleted on dispose.</summary>
public sealed class ConfigDirectory : IDisposable
{
    private ConfigDirectory(string path)
    {
        Path = path;
        Directory.CreateDirectory(path);
    }

    public string Path { get; }

    public string ConfigFile => System.IO.Path.Combine(Path, "config.yml");

    public static ConfigDirectory Create(string yaml)
    {
        var directory = new ConfigDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pgproxy-host-" + Guid.NewGuid().ToString("N")));
        File.WriteAllText(directory.ConfigFile, yaml);
        return directory;
    }

    /// <summary>A configuration of one instance "proxy" on a free port, relaying to the fixture's server.</summary>
    public static string OneInstance(PostgresServer server, string settings = "") =>
        string.Create(CultureInfo.InvariantCulture, $"""
            settings:
              log-level: info
            {settings}
            instances:
              - listen:
                  name: proxy
                  host: 127.0.0.1
                  port: 0
                redirect:
                  name: postgresql
                  host: {server.Host}
                  port: {server.Port}
            """);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory left behind is not a test failure.
        }
    }
}
