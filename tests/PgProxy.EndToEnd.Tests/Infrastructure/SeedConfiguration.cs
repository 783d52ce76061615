using System.Globalization;

namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>The original proxy's config.yml (../shared/seed/tableau_hll.md), which PgProxy must run as it is.</summary>
public static class SeedConfiguration
{
    /// <summary>The file exactly as it was shipped: listens on 5111, relays to 5432.</summary>
    public const string Yaml = """
        plugins:
          - tableau_hll

        settings:
          log-level: debug
          intercept-log: logs/intercept.log
          general-log: logs/general.log

        instances:
          - listen:
              name: proxy
              host: 127.0.0.1
              port: 5111
            redirect:
              name: postgresql
              host: 127.0.0.1
              port: 5432
            intercept:
              commands:
                queries:
                  - plugin: tableau_hll
                    function: rewrite_query
                connects:
              responses:
        """;

    /// <summary>
    /// The same file, listening on a free port and relaying to <paramref name="server"/>; <paramref name="plugins"/>
    /// replaces the entries of its <c>plugins</c> list (the long form with settings, say).
    /// </summary>
    public static string For(PostgresServer server, string plugins = "  - tableau_hll") =>
        Yaml.Replace("  - tableau_hll\n", plugins + "\n", StringComparison.Ordinal)
            .Replace("port: 5111", "port: 0", StringComparison.Ordinal)
            .Replace("port: 5432", "port: " + server.Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
}
