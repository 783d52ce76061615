using PgProxy.Core.Admin;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tests.Admin;

/// <summary>SHOW CONFIG: every key of the file by its path, defaults filled in, secrets masked.</summary>
public sealed class ConfigRowsTests
{
    private static readonly string BaseDirectory = Path.Combine(Path.GetTempPath(), "pgproxy-config-rows");

    private static Dictionary<string, string?> Rows(string yaml) =>
        ConfigRows.Of(ConfigLoader.Parse(yaml, BaseDirectory, "config.yml")).ToDictionary(row => row[0]!, row => row[1]);

    private const string Full = """
        plugins:
          - name: tagger
            settings: {api-key: abc123, tag: report}
        settings:
          log-level: debug
          shutdown-timeout: 10s
        instances:
          - listen:
              name: proxy
              host: 127.0.0.1
              port: 6432
              tls: {mode: allow, cert-file: server.crt, key-file: server.key, key-password: hunter2}
            redirect: {name: db, host: db.internal, port: 5432, tls: {mode: verify-full, ca-file: root.crt}}
            auth: {auth-user: pgproxy_auth, auth-password: s3cret}
            intercept:
              commands:
                queries:
                  - {plugin: tagger, function: tag, on-error: refuse, timeout: 2s}
            limits: {max-connections: 50}
        admin:
          listen: {host: 127.0.0.1, port: 6400}
          users: [ops, dba]
          auth-file: admin-users.txt
        """;

    [Fact]
    public void Every_key_is_named_by_its_path_with_the_value_as_the_file_would_write_it()
    {
        Dictionary<string, string?> rows = Rows(Full);

        Assert.Equal("tagger", rows["plugins[0].name"]);
        Assert.Equal("report", rows["plugins[0].settings.tag"]);
        Assert.Equal("debug", rows["settings.log-level"]);
        Assert.Equal("10s", rows["settings.shutdown-timeout"]);
        Assert.Equal("100 MB", rows["settings.log-max-size"]);
        Assert.Null(rows["settings.plugin-failure"]);
        Assert.Equal("6432", rows["instances[0].listen.port"]);
        Assert.Equal("allow", rows["instances[0].listen.tls.mode"]);
        Assert.Equal(Path.Combine(BaseDirectory, "server.key"), rows["instances[0].listen.tls.key-file"]);
        Assert.Equal("verify-full", rows["instances[0].redirect.tls.mode"]);
        Assert.Equal("pgproxy_auth", rows["instances[0].auth.auth-user"]);
        Assert.Equal(AuthConfig.DefaultAuthQuery, rows["instances[0].auth.auth-query"]);
        Assert.Equal("tag", rows["instances[0].intercept.commands.queries[0].function"]);
        Assert.Equal("refuse", rows["instances[0].intercept.commands.queries[0].on-error"]);
        Assert.Equal("2s", rows["instances[0].intercept.commands.queries[0].timeout"]);
        Assert.Equal("1 GB", rows["instances[0].limits.max-message-size"]);
        Assert.Equal("50", rows["instances[0].limits.max-connections"]);
        Assert.Equal("6400", rows["admin.listen.port"]);
        Assert.Equal("ops, dba", rows["admin.users"]);
        Assert.Equal(Path.Combine(BaseDirectory, "admin-users.txt"), rows["admin.auth-file"]);
    }

    [Fact]
    public void Passwords_and_keys_are_masked_and_files_are_not()
    {
        Dictionary<string, string?> rows = Rows(Full);

        Assert.Equal(ConfigRows.Masked, rows["instances[0].listen.tls.key-password"]);
        Assert.Equal(ConfigRows.Masked, rows["instances[0].auth.auth-password"]);
        Assert.Equal(ConfigRows.Masked, rows["plugins[0].settings.api-key"]);
        Assert.Null(rows["admin.tls.key-password"]);
        Assert.DoesNotContain(rows.Values, value => value is not null && (value.Contains("hunter2", StringComparison.Ordinal) || value.Contains("s3cret", StringComparison.Ordinal) || value.Contains("abc123", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("instances[0].listen.tls.key-password", true)]
    [InlineData("instances[0].auth.auth-password", true)]
    [InlineData("plugins[0].settings.api-key", true)]
    [InlineData("plugins[0].settings.client_secret", true)]
    [InlineData("plugins[0].settings.token", true)]
    [InlineData("plugins[0].settings.key", true)]
    [InlineData("instances[0].listen.tls.key-file", false)]
    [InlineData("instances[0].redirect.tls.cert-file", false)]
    [InlineData("admin.auth-file", false)]
    [InlineData("instances[0].auth.auth-user", false)]
    [InlineData("settings.log-level", false)]
    public void A_secret_is_a_name_that_mentions_a_password_secret_token_or_key_but_not_a_file(string key, bool secret)
    {
        Assert.Equal(secret, ConfigRows.IsSecret(key));
    }

    [Fact]
    public void Without_an_admin_section_there_are_no_admin_rows_and_a_file_of_defaults_shows_them()
    {
        Dictionary<string, string?> rows = Rows("instances:\n  - listen: {name: p, host: 127.0.0.1, port: 1}\n    redirect: {name: d, host: h, port: 2}");

        Assert.DoesNotContain(rows.Keys, key => key.StartsWith("admin.", StringComparison.Ordinal));
        Assert.Equal("info", rows["settings.log-level"]);
        Assert.Equal("prefer", rows["instances[0].redirect.tls.mode"]);
        Assert.Equal("30s", rows["instances[0].limits.startup-timeout"]);
    }

    [Fact]
    public void Rules_metrics_stats_and_the_query_log_have_their_rows()
    {
        Dictionary<string, string?> rows = Rows("""
            settings: {rules-mode: log-only, rule-timeout: 50ms}
            instances:
              - listen: {name: p, host: 127.0.0.1, port: 1}
                redirect: {name: d, host: h, port: 2}
                rules:
                  - {name: no-ddl, match: {statement: ddl}, refuse: {message: no}}
                  - {name: tagged, match: {}, tag: app, continue: true}
            metrics: {listen: {port: 9300}}
            stats: {max-queries: 100}
            query-log: {file: q.log, format: text}
            """);

        Assert.Equal(("log-only", "50ms", "false"), (rows["settings.rules-mode"], rows["settings.rule-timeout"], rows["settings.watch-config"]));
        Assert.Equal(("no-ddl", "42501 no", null), (rows["instances[0].rules[0].name"], rows["instances[0].rules[0].refuse"], rows["instances[0].rules[0].tag"]));
        Assert.Equal(("app", "true", "enforce"), (rows["instances[0].rules[1].tag"], rows["instances[0].rules[1].continue"], rows["instances[0].rules[1].mode"]));
        Assert.Equal(("127.0.0.1", "9300"), (rows["metrics.listen.host"], rows["metrics.listen.port"]));
        Assert.Equal(("true", "100"), (rows["stats.queries"], rows["stats.max-queries"]));
        Assert.Equal((Path.Combine(BaseDirectory, "q.log"), "text", "0s", "false"), (rows["query-log.file"], rows["query-log.format"], rows["query-log.min-duration"], rows["query-log.parameters"]));
    }
}
