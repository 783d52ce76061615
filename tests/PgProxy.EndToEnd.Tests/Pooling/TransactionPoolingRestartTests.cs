using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Pooling;

/// <summary>
/// The server of a transaction pool restarts while clients work: each client's statement fails while it is down (or
/// is retried on a new connection when the idle one it got had died), the proxy stays up, and the pool refills as
/// the server returns, with the same clients' sessions still open.
/// </summary>
public sealed class TransactionPoolingRestartTests : IDisposable
{
    private readonly CancellationTokenSource deadline = new(TimeSpan.FromSeconds(150));
    private readonly string authFile = Path.Combine(Path.GetTempPath(), $"pgproxy-txr-users-{Guid.NewGuid():N}.txt");

    public void Dispose()
    {
        deadline.Dispose();
        File.Delete(authFile);
    }

    [Fact]
    public async Task Sessions_survive_an_upstream_restart_between_transactions_and_the_pool_refills()
    {
        await using PostgresServer server = await PostgresServer.StartNewAsync(deadline.Token);
        string verifier = await server.QueryAsSuperuserAsync($"SELECT rolpassword FROM pg_authid WHERE rolname = '{PostgresServer.ScramUser}'", deadline.Token);
        await File.WriteAllTextAsync(authFile, $"\"{PostgresServer.ScramUser}\" \"{verifier}\"\n", deadline.Token);
        ProxyConfig config = TestConfigs.Relay(server.Host, server.Port);
        InstanceConfig instance = config.Instances[0] with
        {
            Auth = new AuthConfig { AuthFile = authFile },
            Pool = new PoolConfig { Mode = PoolMode.Transaction, Size = 4, QueueTimeout = TimeSpan.FromSeconds(20) },
            UpstreamTls = new UpstreamTlsConfig { Mode = UpstreamTlsMode.Disable },
        };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config with { Instances = [instance] });
        var clients = new List<NpgsqlConnection>();
        try
        {
            for (int i = 0; i < 8; i++)
            {
                var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(proxy.ConnectionString(PostgresServer.ScramUser, PostgresServer.ScramPassword)) { Pooling = false }.ConnectionString);
                await connection.OpenAsync(deadline.Token);
                clients.Add(connection);
                Assert.Equal(i, await ScalarAsync(connection, $"SELECT {i}"));
            }

            await server.StopAsync(deadline.Token);
            foreach (NpgsqlConnection client in clients.Take(2))
            {
                // The pool's connections died with the server: a statement now fails with an error, it does not hang.
                await Assert.ThrowsAnyAsync<NpgsqlException>(() => ScalarAsync(client, "SELECT 1")).WaitAsync(deadline.Token);
            }

            await server.StartAsync(deadline.Token);

            // The clients that did not try meanwhile kept their sessions: their next statement gets a new connection.
            foreach (NpgsqlConnection client in clients.Skip(2))
            {
                await Waiting.WaitUntilAsync(async () => await ScalarAsync(client, "SELECT 7") == 7, TimeSpan.FromSeconds(30), "a session to work again after the restart", deadline.Token);
            }

            await using var fresh = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.ScramUser, PostgresServer.ScramPassword));
            await fresh.OpenAsync(deadline.Token);
            Assert.Equal(1, await ScalarAsync(fresh, "SELECT 1"));
        }
        finally
        {
            foreach (NpgsqlConnection client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    private async Task<int> ScalarAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (int)(await command.ExecuteScalarAsync(deadline.Token))!;
    }
}
