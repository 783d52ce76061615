using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Admin;

/// <summary>
/// The console logs its users in itself. Its instance here relays to a port nobody listens on, so anything that
/// reached the upstream would fail with 08001: each answer below comes from PgProxy alone.
/// </summary>
public sealed class ConsoleAuthenticationTests : IDisposable
{
    private readonly ConsoleSetup console = ConsoleSetup.Create();

    public void Dispose() => console.Dispose();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_wrong_password_is_28P01_with_PostgreSQLs_own_words(bool dedicated)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.ConfigWithoutUpstream());

        ProcessResult result = await Psql.RunAsync(ConsoleSetup.Target(proxy, dedicated, password: "not the password"), "SHOW VERSION;\n");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains($"FATAL:  password authentication failed for user \"{ConsoleSetup.User}\"", result.StandardError, StringComparison.Ordinal);
        await AssertRefusedWithAsync(proxy, "28P01");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_user_not_in_admin_users_is_28000_even_with_a_verifier_and_the_right_password(bool dedicated)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.ConfigWithoutUpstream());

        ProcessResult result = await Psql.RunAsync(ConsoleSetup.Target(proxy, dedicated, ConsoleSetup.Outsider, ConsoleSetup.OutsiderPassword), "SHOW VERSION;\n");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains($"FATAL:  user \"{ConsoleSetup.Outsider}\" may not use the PgProxy console: it is not in admin.users", result.StandardError, StringComparison.Ordinal);
        await AssertRefusedWithAsync(proxy, "28000");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_user_in_admin_users_without_a_verifier_gets_28P01(bool dedicated)
    {
        ProxyConfig config = console.ConfigWithoutUpstream();
        config = config with { Admin = config.Admin! with { Users = [ConsoleSetup.User, "newcomer"] } };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config);

        ProcessResult result = await Psql.RunAsync(ConsoleSetup.Target(proxy, dedicated, "newcomer", "whatever"), "SHOW VERSION;\n");

        Assert.Contains("FATAL:  password authentication failed for user \"newcomer\"", result.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true, ConsoleSetup.User, ConsoleSetup.Password)]
    [InlineData(false, ConsoleSetup.User, ConsoleSetup.Password)]
    [InlineData(true, ConsoleSetup.Md5User, ConsoleSetup.Md5Password)]
    [InlineData(false, ConsoleSetup.Md5User, ConsoleSetup.Md5Password)]
    public async Task Scram_and_md5_users_log_in_without_any_upstream(bool dedicated, string user, string password)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.ConfigWithoutUpstream());

        ConsoleOutput output = await ConsolePsql.QueryAsync(ConsoleSetup.Target(proxy, dedicated, user, password), "SHOW SESSIONS");

        Assert.Equal(user, output.Value(Assert.Single(output.Rows), "user"));
        Assert.DoesNotContain(proxy.Logs.Lines, line => line.Contains("unreachable", StringComparison.Ordinal));
    }

    [Fact]
    public async Task On_its_own_listener_the_console_answers_whatever_database_is_asked_for()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.ConfigWithoutUpstream());
        PsqlTarget target = ConsoleSetup.Target(proxy) with { Database = ConsoleSetup.User };

        ConsoleOutput output = await ConsolePsql.QueryAsync(target, "SHOW SESSIONS");

        Assert.Equal(ConsoleSetup.User, output.Value(Assert.Single(output.Rows), "database"));
    }

    [Fact]
    public async Task On_an_instance_port_another_database_is_relayed_upstream_as_before()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.ConfigWithoutUpstream());

        ProcessResult result = await Psql.RunAsync(ConsoleSetup.Target(proxy, dedicated: false) with { Database = "postgres" }, "SELECT 1;\n");

        Assert.Contains("could not connect to upstream", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Over_admin_tls_psql_logs_in_with_sslmode_verify_full()
    {
        using TestCertificates certificates = TestCertificates.Create();
        ProxyConfig config = console.ConfigWithoutUpstream();
        config = config with
        {
            Admin = config.Admin! with { Tls = new ListenTlsConfig { Mode = ListenTlsMode.Require, CertFile = certificates.ServerCertFile, KeyFile = certificates.ServerKeyFile } },
        };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config);
        var options = new PsqlOptions
        {
            Arguments = ["--csv", "-c", "SHOW SESSIONS"],
            Environment = new Dictionary<string, string?> { ["PGSSLMODE"] = "verify-full", ["PGSSLROOTCERT"] = certificates.CaFile },
        };

        ProcessResult tls = await Psql.RunAsync(ConsoleSetup.Target(proxy) with { Host = "localhost" }, string.Empty, options);
        ProcessResult plain = await Psql.RunAsync(ConsoleSetup.Target(proxy), "SHOW VERSION;\n", new PsqlOptions { Environment = new Dictionary<string, string?> { ["PGSSLMODE"] = "disable" } });

        Assert.True(tls.Succeeded, tls.ToString());
        Assert.Contains(",on,", tls.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("FATAL:  TLS is required", plain.StandardError, StringComparison.Ordinal);
    }

    /// <summary>The refusal was PgProxy's own, logged with its SQLSTATE, and nothing tried the upstream.</summary>
    private static async Task AssertRefusedWithAsync(ProxyHarness proxy, string sqlState)
    {
        await proxy.Logs.WaitForLineAsync(line => line.Contains($"refused before start-up: {sqlState}", StringComparison.Ordinal), TimeSpan.FromSeconds(10), $"the refusal with {sqlState} is logged");
        Assert.DoesNotContain(proxy.Logs.Lines, line => line.Contains("unreachable", StringComparison.Ordinal));
    }
}
