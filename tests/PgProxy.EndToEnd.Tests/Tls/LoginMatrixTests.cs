using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Tls;

/// <summary>A client library with its channel-binding setting, as a user configures it.</summary>
public enum LoginClient
{
    NpgsqlPrefer,
    NpgsqlDisable,
    PsqlPrefer,
    PsqlDisable,
}

/// <summary>The server behind the proxy and the instance's <c>redirect.tls.mode</c>.</summary>
public enum UpstreamShape
{
    /// <summary>A server with ssl=off; the default mode (prefer) falls back to plain text on its 'N'.</summary>
    PlainServerPrefer,

    /// <summary>A server with ssl=on under the default mode.</summary>
    TlsServerPrefer,
    TlsServerRequire,
    TlsServerVerifyFull,
}

/// <summary>
/// Every client library logs in with every password method, whatever TLS each leg has: {Npgsql, psql} × channel
/// binding {prefer, disable} × {trust, cleartext, md5, SCRAM} × client leg {plain, TLS} × {ssl=off server, ssl=on
/// server under prefer, require, verify-full} × {auth section, none}. A client that offers channel binding (Npgsql
/// always, libpq with channel_binding=prefer over TLS) cannot have its SCRAM relayed to a server that binds, so SCRAM ends at the
/// proxy (auth section), falls back to a plain-text upstream (prefer), or is refused naming the setting to add.
/// </summary>
[Collection(TlsPostgres.Name)]
public sealed class LoginMatrixTests(TlsPostgresFixture fixture)
{
    private const string NeedsAuth = "set auth.auth-file or auth.auth-user for instance \"proxy\"";

    public static TheoryData<LoginClient, string, bool, UpstreamShape, bool> Combinations()
    {
        var data = new TheoryData<LoginClient, string, bool, UpstreamShape, bool>();
        foreach (LoginClient client in Enum.GetValues<LoginClient>())
        {
            foreach (bool clientTls in new[] { false, true })
            {
                foreach (UpstreamShape upstream in Enum.GetValues<UpstreamShape>())
                {
                    foreach (string user in new[] { PostgresServer.Md5User, PostgresServer.ScramUser })
                    {
                        data.Add(client, user, clientTls, upstream, false);
                        data.Add(client, user, clientTls, upstream, true);
                    }

                    // Relayed as they come whatever the auth section says: once, without one.
                    data.Add(client, PostgresServer.TrustUser, clientTls, upstream, false);
                    data.Add(client, PostgresServer.CleartextUser, clientTls, upstream, false);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public async Task Each_combination_logs_in_or_names_the_setting_to_add(LoginClient client, string user, bool clientTls, UpstreamShape upstream, bool authSection)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Proxy(upstream, authSection));

        LoginResult result = await LogInAsync(client, proxy, user, Password(user), clientTls);

        // Npgsql answers 'y' to an offer of SCRAM-SHA-256 alone whatever its Channel Binding setting; libpq does over TLS.
        bool offersBinding = client is LoginClient.NpgsqlPrefer or LoginClient.NpgsqlDisable || (client == LoginClient.PsqlPrefer && clientTls);
        bool serverTls = upstream != UpstreamShape.PlainServerPrefer;
        bool scramNeedsHelp = user == PostgresServer.ScramUser && offersBinding && serverTls;
        Assert.DoesNotContain("channel binding negotiation", result.Error ?? "", StringComparison.Ordinal);
        if (scramNeedsHelp && !authSection && upstream != UpstreamShape.TlsServerPrefer)
        {
            Assert.Null(result.UpstreamEncrypted);
            Assert.Equal("28000", result.SqlState);
            Assert.Contains(NeedsAuth, result.Error, StringComparison.Ordinal);
            return;
        }

        Assert.True(result.Error is null, result.Error);
        bool fellBack = scramNeedsHelp && !authSection;
        Assert.Equal(serverTls && !fellBack, result.UpstreamEncrypted);
        Assert.Equal(scramNeedsHelp && authSection, proxy.Logs.Lines.Any(line => line.Contains("ended at the proxy", StringComparison.Ordinal)));
        Assert.Equal(fellBack ? 1 : 0, proxy.Logs.Lines.Count(line => line.Contains("relayed over a plain-text connection", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(LoginClient.NpgsqlPrefer)]
    [InlineData(LoginClient.PsqlPrefer)]
    public async Task The_plain_text_fallback_is_logged_once_per_instance(LoginClient client)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Proxy(UpstreamShape.TlsServerPrefer, authSection: false));

        for (int i = 0; i < 3; i++)
        {
            LoginResult result = await LogInAsync(client, proxy, PostgresServer.ScramUser, PostgresServer.ScramPassword, clientTls: true);
            Assert.True(result.Error is null, result.Error);
            Assert.False(result.UpstreamEncrypted);
        }

        Assert.Single(proxy.Logs.Lines, line => line.Contains("relayed over a plain-text connection", StringComparison.Ordinal));
        Assert.Equal(3, proxy.Logs.Lines.Count(line => line.Contains("relayed over a plain-text upstream connection", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(LoginClient.NpgsqlPrefer, TlsPostgresFixture.SslOnlyUser, "no pg_hba.conf entry")]
    [InlineData(LoginClient.PsqlPrefer, TlsPostgresFixture.SslOnlyUser, "no pg_hba.conf entry")]
    [InlineData(LoginClient.NpgsqlPrefer, TlsPostgresFixture.ScramOverSslUser, "it asks for a cleartext password instead of SCRAM-SHA-256")]
    [InlineData(LoginClient.PsqlPrefer, TlsPostgresFixture.ScramOverSslUser, "it asks for a cleartext password instead of SCRAM-SHA-256")]
    public async Task A_server_that_refuses_the_plain_text_fallback_gets_the_client_the_setting_to_add(LoginClient client, string user, string serverReason)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Proxy(UpstreamShape.TlsServerPrefer, authSection: false));

        LoginResult result = await LogInAsync(client, proxy, user, PostgresServer.ScramPassword, clientTls: true);

        Assert.Equal("28000", result.SqlState);
        Assert.Contains("the server refused a plain-text connection", result.Error, StringComparison.Ordinal);
        Assert.Contains(serverReason, result.Error, StringComparison.Ordinal);
        Assert.Contains(NeedsAuth, result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(UpstreamShape.TlsServerPrefer)]
    [InlineData(UpstreamShape.TlsServerVerifyFull)]
    public async Task Those_users_log_in_over_tls_with_an_auth_section(UpstreamShape upstream)
    {
        // The same roles, with the auth section the refusal names: SCRAM ends at the proxy and the server sees TLS.
        ProxyConfig config = Proxy(upstream, authSection: true);
        string verifier = await fixture.Server.QueryAsSuperuserAsync($"SELECT rolpassword FROM pg_authid WHERE rolname = '{TlsPostgresFixture.SslOnlyUser}'");
        string authFile = Path.Combine(fixture.Certificates.DirectoryPath, $"ssl-only-{upstream}.txt");
        await File.WriteAllTextAsync(authFile, $"\"{TlsPostgresFixture.SslOnlyUser}\" \"{verifier}\"\n");
        config = config with { Instances = [config.Instances[0] with { Auth = new AuthConfig { AuthFile = authFile } }] };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config);

        LoginResult result = await LogInAsync(LoginClient.NpgsqlPrefer, proxy, TlsPostgresFixture.SslOnlyUser, PostgresServer.ScramPassword, clientTls: false);

        Assert.True(result.Error is null, result.Error);
        Assert.True(result.UpstreamEncrypted);
    }

    [Theory]
    [InlineData(LoginClient.NpgsqlPrefer)]
    [InlineData(LoginClient.PsqlPrefer)]
    public async Task A_wrong_password_over_the_fallback_is_the_servers_refusal(LoginClient client)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(Proxy(UpstreamShape.TlsServerPrefer, authSection: false));

        LoginResult result = await LogInAsync(client, proxy, PostgresServer.ScramUser, "not-the-password", clientTls: true);

        Assert.Equal("28P01", result.SqlState);
        Assert.Contains($"password authentication failed for user \"{PostgresServer.ScramUser}\"", result.Error, StringComparison.Ordinal);
    }

    private ProxyConfig Proxy(UpstreamShape upstream, bool authSection)
    {
        PostgresServer server = upstream == UpstreamShape.PlainServerPrefer ? fixture.PlainServer : fixture.Server;
        ProxyConfig config = TlsSetups.Proxy(
            fixture,
            listen: ListenTlsMode.Allow,
            upstream: upstream switch
            {
                UpstreamShape.TlsServerRequire => UpstreamTlsMode.Require,
                UpstreamShape.TlsServerVerifyFull => UpstreamTlsMode.VerifyFull,
                _ => UpstreamTlsMode.Prefer,
            },
            verifiers: VerifierSource.None,
            upstreamHost: server.Host);
        InstanceConfig instance = config.Instances[0] with
        {
            Redirect = config.Instances[0].Redirect with { Port = server.Port },
            Auth = authSection ? new AuthConfig { AuthFile = server == fixture.PlainServer ? fixture.PlainAuthFile : fixture.AuthFile } : null,
        };
        return config with { Instances = [instance] };
    }

    private static string? Password(string user) => user switch
    {
        PostgresServer.Md5User => PostgresServer.Md5Password,
        PostgresServer.ScramUser => PostgresServer.ScramPassword,
        PostgresServer.CleartextUser => PostgresServer.CleartextPassword,
        _ => null,
    };

    /// <summary>How a login went: whether the server session is on TLS (pg_stat_ssl), or the error's SQLSTATE and text.</summary>
    private sealed record LoginResult(bool? UpstreamEncrypted, string? SqlState, string? Error);

    private async Task<LoginResult> LogInAsync(LoginClient client, ProxyHarness proxy, string user, string? password, bool clientTls) =>
        client is LoginClient.NpgsqlPrefer or LoginClient.NpgsqlDisable
            ? await LogInWithNpgsqlAsync(proxy, user, password, clientTls, client == LoginClient.NpgsqlPrefer ? ChannelBinding.Prefer : ChannelBinding.Disable)
            : await LogInWithPsqlAsync(proxy, user, password, clientTls, client == LoginClient.PsqlPrefer ? "prefer" : "disable");

    private async Task<LoginResult> LogInWithNpgsqlAsync(ProxyHarness proxy, string user, string? password, bool clientTls, ChannelBinding channelBinding)
    {
        var builder = new NpgsqlConnectionStringBuilder(proxy.ConnectionString(user, password))
        {
            SslMode = clientTls ? SslMode.VerifyFull : SslMode.Disable,
            RootCertificate = clientTls ? fixture.Certificates.CaFile : null,
            ChannelBinding = channelBinding,
        };
        try
        {
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", connection);
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal(user, reader.GetString(0));
            return new LoginResult(reader.GetBoolean(1), null, null);
        }
        catch (PostgresException e)
        {
            return new LoginResult(null, e.SqlState, e.MessageText);
        }
    }

    private async Task<LoginResult> LogInWithPsqlAsync(ProxyHarness proxy, string user, string? password, bool clientTls, string channelBinding)
    {
        ProcessResult result = await Infrastructure.Psql.RunAsync(
            proxy.PsqlTarget(user, password),
            TlsSetups.WhoAndHow,
            TlsSetups.Psql(fixture, clientTls ? "verify-full" : "disable", channelBinding));
        if (!result.Succeeded)
        {
            return new LoginResult(null, RefusalState(proxy, result.StandardError), result.StandardError);
        }

        string[] columns = result.StandardOutput.Trim().Split('|');
        Assert.Equal(user, columns[0]);
        return new LoginResult(columns[1] == "t", null, null);
    }

    /// <summary>
    /// libpq prints a login error without its SQLSTATE: a refusal the proxy raised is read from its log line, and a
    /// relayed wrong password from PostgreSQL's own wording.
    /// </summary>
    private static string? RefusalState(ProxyHarness proxy, string error)
    {
        const string Refused = "refused before start-up: ";
        string? line = proxy.Logs.Lines.LastOrDefault(line => line.Contains(Refused, StringComparison.Ordinal));
        if (line is not null)
        {
            return line[(line.IndexOf(Refused, StringComparison.Ordinal) + Refused.Length)..].Split(' ')[0];
        }

        return error.Contains("password authentication failed", StringComparison.Ordinal) ? "28P01" : null;
    }
}
