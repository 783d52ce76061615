using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tests.Configuration;

/// <summary>The <c>admin</c> section: its defaults, its paths, and the mistakes reported with their key and line.</summary>
public sealed class AdminConfigTests
{
    private static readonly string BaseDirectory = Path.Combine(Path.GetTempPath(), "pgproxy-admin-config-tests");

    private static ProxyConfig Parse(string yaml) => ConfigLoader.Parse(yaml, BaseDirectory, "config.yml");

    private static string WithAdmin(string admin) => $"""
        instances:
          - listen: {"{"}name: proxy, host: 127.0.0.1, port: 6432{"}"}
            redirect: {"{"}name: db, host: db.internal, port: 5432{"}"}
        {admin}
        """;

    private static string[] Errors(string yaml) =>
        [.. Assert.Throws<ConfigException>(() => Parse(yaml)).Errors.Select(error => error.Format("config.yml"))];

    [Fact]
    public void Without_the_section_there_is_no_console()
    {
        Assert.Null(Parse(WithAdmin(string.Empty)).Admin);
    }

    [Fact]
    public void Every_key_is_read_and_paths_resolve_against_the_configuration_directory()
    {
        AdminConfig admin = Parse(WithAdmin("""
            admin:
              listen: {host: 127.0.0.1, port: 6400}
              users: [ops, "dba team"]
              auth-file: admin-users.txt
              tls: {mode: allow, cert-file: server.crt, key-file: server.key}
            """)).Admin!;

        Assert.Equal(new EndpointConfig("admin", "127.0.0.1", 6400), admin.Listen);
        Assert.Equal(["ops", "dba team"], admin.Users);
        Assert.Equal(Path.Combine(BaseDirectory, "admin-users.txt"), admin.AuthFile);
        Assert.Equal(ListenTlsMode.Allow, admin.Tls.Mode);
        Assert.Equal(Path.Combine(BaseDirectory, "server.crt"), admin.Tls.CertFile);
    }

    [Fact]
    public void The_listener_is_optional_and_TLS_is_off_by_default()
    {
        AdminConfig admin = Parse(WithAdmin("admin:\n  users: [ops]\n  auth-file: /etc/pgproxy/admin-users.txt")).Admin!;

        Assert.Null(admin.Listen);
        Assert.Equal(ListenTlsMode.Disable, admin.Tls.Mode);
        Assert.Equal("/etc/pgproxy/admin-users.txt", admin.AuthFile);
    }

    [Fact]
    public void Users_and_the_auth_file_are_required()
    {
        Assert.Equal(
            [
                "config.yml:4:1: admin.users: required key 'users' is missing",
                "config.yml:4:1: admin.auth-file: required key 'auth-file' is missing",
            ],
            Errors(WithAdmin("admin:\n  listen: {host: 127.0.0.1, port: 6400}")));
    }

    [Fact]
    public void An_empty_or_repeating_user_list_and_unknown_keys_are_errors_with_their_lines()
    {
        Assert.Equal(
            ["config.yml:6:10: admin.users: at least one user is required: nobody could log in to the console"],
            Errors(WithAdmin("admin:\n  auth-file: a.txt\n  users: []")));
        Assert.Equal(
            ["config.yml:6:16: admin.users[1]: user 'ops' is listed twice"],
            Errors(WithAdmin("admin:\n  auth-file: a.txt\n  users: [ops, ops]")));
        Assert.Equal(
            ["config.yml:7:3: admin.auth_file: unknown key 'auth_file'; keys are hyphenated: did you mean 'auth-file'?"],
            Errors(WithAdmin("admin:\n  auth-file: a.txt\n  users: [ops]\n  auth_file: b.txt")));
    }

    [Fact]
    public void The_listener_may_not_take_an_instance_address_and_needs_host_and_port()
    {
        Assert.Equal(
            ["config.yml:6:11: admin.listen: 127.0.0.1:6432 is already listened on by instance 'proxy'"],
            Errors(WithAdmin("admin:\n  users: [ops]\n  listen: {host: 127.0.0.1, port: 6432}\n  auth-file: a.txt")));
        Assert.Equal(
            ["config.yml:6:3: admin.listen.port: required key 'port' is missing"],
            Errors(WithAdmin("admin:\n  users: [ops]\n  listen: {host: 127.0.0.1}\n  auth-file: a.txt")));
    }

    [Fact]
    public void TLS_is_checked_like_listen_tls_and_needs_the_listener()
    {
        Assert.Equal(
            [
                "config.yml:6:3: admin.tls.cert-file: mode require needs both cert-file and key-file; cert-file is missing",
                "config.yml:6:3: admin.tls.key-file: mode require needs both cert-file and key-file; key-file is missing",
            ],
            Errors(WithAdmin("admin:\n  users: [ops]\n  tls: {mode: require}\n  listen: {host: 127.0.0.1, port: 6400}\n  auth-file: a.txt")));
        Assert.Equal(
            ["config.yml:7:8: admin.tls: admin.tls applies to admin.listen, which is not set; the console on an instance's port uses that instance's listen.tls"],
            Errors(WithAdmin("admin:\n  users: [ops]\n  auth-file: a.txt\n  tls: {mode: allow, cert-file: a.crt, key-file: a.key}")));
    }

    [Fact]
    public void Two_sections_with_the_same_keys_are_equal_so_a_reload_sees_no_change()
    {
        string yaml = WithAdmin("admin:\n  users: [ops, dba]\n  auth-file: a.txt");

        Assert.Equal(Parse(yaml).Admin, Parse(yaml).Admin);
        Assert.NotEqual(Parse(yaml).Admin, Parse(yaml.Replace("dba", "other", StringComparison.Ordinal)).Admin);
    }
}
