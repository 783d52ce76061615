using Npgsql;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Tls;

/// <summary>
/// What a new user runs first: the pgproxy command with the README's configuration (no TLS keys, so
/// <c>redirect.tls.mode: prefer</c>, and no auth section), in front of a server with ssl=on and one with ssl=off.
/// Npgsql and psql log in with SCRAM whatever their channel-binding setting.
/// </summary>
[Collection(TlsPostgres.Name)]
public sealed class DefaultConfigurationLoginTests(TlsPostgresFixture fixture)
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Npgsql_and_psql_log_in_with_scram_through_the_default_configuration(bool serverSsl)
    {
        PostgresServer server = serverSsl ? fixture.Server : fixture.PlainServer;
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        int port = proxy.PortOf("proxy");

        foreach (ChannelBinding channelBinding in new[] { ChannelBinding.Prefer, ChannelBinding.Disable })
        {
            var builder = new NpgsqlConnectionStringBuilder
            {
                Host = "127.0.0.1",
                Port = port,
                Username = PostgresServer.ScramUser,
                Password = PostgresServer.ScramPassword,
                Database = PostgresServer.Database,
                Pooling = false,
                Timeout = 15,
                ChannelBinding = channelBinding,
            };
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT current_user::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()", connection);
            Assert.Equal(PostgresServer.ScramUser, await command.ExecuteScalarAsync());
        }

        foreach (string channelBinding in new[] { "prefer", "disable" })
        {
            ProcessResult psql = await Infrastructure.Psql.RunAsync(
                new PsqlTarget("127.0.0.1", port, PostgresServer.ScramUser, PostgresServer.Database, PostgresServer.ScramPassword),
                TlsSetups.WhoAndHow,
                TlsSetups.Psql(fixture, "prefer", channelBinding));
            Assert.True(psql.Succeeded, psql.ToString());

            // libpq's sslmode=prefer meets a proxy without listen.tls: plain text, so it sends 'n' and SCRAM is relayed on TLS.
            Assert.Equal($"{PostgresServer.ScramUser}|{(serverSsl ? "t" : "f")}", psql.StandardOutput.Trim());
        }

        // Npgsql answered 'y': against ssl=on its logins took the plain-text fallback, logged at warning once.
        int warnings = CountOccurrences(proxy.Output, "relayed over a plain-text connection");
        Assert.Equal(serverSsl ? 1 : 0, warnings);
    }

    [Fact]
    public async Task Npgsql_requiring_channel_binding_fails_at_once_with_its_own_error()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = proxy.PortOf("proxy"),
            Username = PostgresServer.ScramUser,
            Password = PostgresServer.ScramPassword,
            Database = PostgresServer.Database,
            Pooling = false,
            Timeout = 15,
            ChannelBinding = ChannelBinding.Require,
        };

        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        NpgsqlException error = await Assert.ThrowsAnyAsync<NpgsqlException>(() => connection.OpenAsync());

        Assert.IsNotType<PostgresException>(error);
        Assert.Contains("ChannelBinding", error.Message, StringComparison.Ordinal);
    }

    private static int CountOccurrences(string text, string value)
    {
        int count = 0;
        for (int at = text.IndexOf(value, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}
