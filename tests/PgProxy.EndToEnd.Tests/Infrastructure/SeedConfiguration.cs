using System.Globalization;
using PgProxy.TestSupport;

namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>The original proxy's config.yml, which PgProxy must run as it is.</summary>
public static class SeedConfiguration
{
    /// <summary>
    /// The file exactly as it was shipped (listens on 5111, relays to 5432), kept once in the repository beside the
    /// plugin it configures.
    /// </summary>
    public static string Yaml { get; } = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "plugins", "TableauHll", "config.yml"));

    /// <summary>
    /// The same file, listening on a free port and relaying to <paramref name="server"/>; <paramref name="plugins"/>
    /// replaces the entries of its <c>plugins</c> list (the long form with settings, say).
    /// </summary>
    public static string For(PostgresServer server, string plugins = "  - tableau_hll") =>
        Yaml.Replace("  - tableau_hll\n", plugins + "\n", StringComparison.Ordinal)
            .Replace("port: 5111", "port: 0", StringComparison.Ordinal)
            .Replace("port: 5432", "port: " + server.Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
}
