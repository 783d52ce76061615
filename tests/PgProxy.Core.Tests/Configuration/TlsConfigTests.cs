using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tests.Configuration;

/// <summary>listen.tls, redirect.tls and auth: defaults, paths, and the mistakes reported with their line.</summary>
public sealed class TlsConfigTests
{
    private static readonly string BaseDirectory = Path.Combine(Path.GetTempPath(), "pgproxy-tls-config-tests");

    private static ProxyConfig Parse(string yaml) => ConfigLoader.Parse(yaml, BaseDirectory, "config.yml");

    private static string Instance(string listenTls = "", string redirectTls = "", string auth = "") => $"""
        instances:
          - listen:
              name: proxy
              host: 127.0.0.1
              port: 6432
        {listenTls}
            redirect:
              name: db
              host: db.internal
              port: 5432
        {redirectTls}
        {auth}
        """;

    [Fact]
    public void Without_tls_keys_clients_are_plain_text_and_the_upstream_is_preferred_encrypted()
    {
        InstanceConfig instance = Parse(Instance()).Instances[0];

        Assert.Equal(ListenTlsMode.Disable, instance.ListenTls.Mode);
        Assert.Equal(UpstreamTlsMode.Prefer, instance.UpstreamTls.Mode);
        Assert.Null(instance.Auth);
    }

    [Fact]
    public void Every_key_is_read_and_paths_resolve_against_the_configuration_directory()
    {
        InstanceConfig instance = Parse(Instance(
            listenTls: "      tls:\n        mode: require\n        cert-file: server.crt\n        key-file: /etc/keys/server.key\n        key-password: secret",
            redirectTls: "      tls:\n        mode: verify-full\n        ca-file: root.crt\n        cert-file: client.crt\n        key-file: client.key",
            auth: "    auth:\n      auth-file: users.txt")).Instances[0];

        Assert.Equal(ListenTlsMode.Require, instance.ListenTls.Mode);
        Assert.Equal(Path.Combine(BaseDirectory, "server.crt"), instance.ListenTls.CertFile);
        Assert.Equal("/etc/keys/server.key", instance.ListenTls.KeyFile);
        Assert.Equal("secret", instance.ListenTls.KeyPassword);
        Assert.Equal(UpstreamTlsMode.VerifyFull, instance.UpstreamTls.Mode);
        Assert.Equal(Path.Combine(BaseDirectory, "root.crt"), instance.UpstreamTls.CaFile);
        Assert.Equal(Path.Combine(BaseDirectory, "client.key"), instance.UpstreamTls.KeyFile);
        Assert.Equal(Path.Combine(BaseDirectory, "users.txt"), instance.Auth!.AuthFile);
    }

    [Fact]
    public void Auth_query_defaults_to_reading_pg_authid()
    {
        AuthConfig auth = Parse(Instance(auth: "    auth:\n      auth-user: pgproxy\n      auth-password: pw")).Instances[0].Auth!;

        Assert.Equal("pgproxy", auth.AuthUser);
        Assert.Equal("pw", auth.AuthPassword);
        Assert.Null(auth.AuthFile);
        Assert.Contains("pg_authid", auth.AuthQuery, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", TlsMinVersion.Tls12)]
    [InlineData("\n        min-version: 1.2", TlsMinVersion.Tls12)]
    [InlineData("\n        min-version: 1.3", TlsMinVersion.Tls13)]
    [InlineData("\n        min-version: '1.3'", TlsMinVersion.Tls13)]
    public void Listen_tls_min_version_is_1_2_unless_raised_to_1_3(string line, TlsMinVersion expected)
    {
        InstanceConfig instance = Parse(Instance(listenTls: "      tls:\n        mode: require\n        cert-file: a\n        key-file: b" + line)).Instances[0];

        Assert.Equal(expected, instance.ListenTls.MinVersion);
    }

    [Theory]
    [InlineData("      tls:\n        mode: require\n        key-file: server.key", "instances[0].listen.tls.cert-file", "mode require needs both cert-file and key-file; cert-file is missing")]
    [InlineData("      tls:\n        mode: sometimes\n        cert-file: a\n        key-file: b", "instances[0].listen.tls.mode", "expected one of disable, allow, require, got 'sometimes'")]
    [InlineData("      tls:\n        mode: allow\n        cert-file: a\n        key-file: b\n        ca-file: c", "instances[0].listen.tls.ca-file", "unknown key 'ca-file'; expected one of mode, cert-file, key-file, key-password, min-version")]
    [InlineData("      tls:\n        mode: allow\n        cert-file: a\n        key-file: b\n        min-version: 1.1", "instances[0].listen.tls.min-version", "expected one of 1.2, 1.3, got '1.1'")]
    public void Listen_tls_mistakes_name_the_key(string listenTls, string keyPath, string message)
    {
        ConfigError error = Assert.Single(Assert.Throws<ConfigException>(() => Parse(Instance(listenTls: listenTls))).Errors);

        Assert.Equal(keyPath, error.KeyPath);
        Assert.Equal(message, error.Message);
    }

    [Theory]
    [InlineData("      tls:\n        mode: allow-ish", "instances[0].redirect.tls.mode", "expected one of disable, prefer, require, verify-ca, verify-full, got 'allow-ish'")]
    [InlineData("      tls:\n        cert-file: client.crt", "instances[0].redirect.tls.key-file", "a client certificate needs both cert-file and key-file; key-file is missing")]
    public void Redirect_tls_mistakes_name_the_key(string redirectTls, string keyPath, string message)
    {
        ConfigError error = Assert.Single(Assert.Throws<ConfigException>(() => Parse(Instance(redirectTls: redirectTls))).Errors);

        Assert.Equal(keyPath, error.KeyPath);
        Assert.Equal(message, error.Message);
    }

    [Theory]
    [InlineData("    auth:\n      auth-file: users.txt\n      auth-user: pgproxy", "set either auth-file, or auth-user (with auth-query and auth-password), not both")]
    [InlineData("    auth:\n      auth-query: SELECT 1", "auth-query needs auth-user, the role that runs it")]
    [InlineData("    auth: {}", "set auth-file, or auth-user (with auth-query and auth-password)")]
    public void Auth_mistakes_are_reported_on_the_section(string auth, string message)
    {
        ConfigError error = Assert.Single(Assert.Throws<ConfigException>(() => Parse(Instance(auth: auth))).Errors);

        Assert.Equal("instances[0].auth", error.KeyPath);
        Assert.Equal(message, error.Message);
    }
}
