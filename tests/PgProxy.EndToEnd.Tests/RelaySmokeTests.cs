using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests;

[Collection(SharedPostgres.Name)]
public sealed class RelaySmokeTests(PostgresFixture fixture)
{
    [Theory]
    [InlineData(PostgresServer.TrustUser, null)]
    [InlineData(PostgresServer.Md5User, PostgresServer.Md5Password)]
    [InlineData(PostgresServer.ScramUser, PostgresServer.ScramPassword)]
    [InlineData(PostgresServer.CleartextUser, PostgresServer.CleartextPassword)]
    public async Task Every_authentication_method_is_relayed(string user, string? password)
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(user, password));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT current_user", connection);

        Assert.Equal(user, await command.ExecuteScalarAsync());
    }
}
