using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Pooling;

/// <summary>What the pooling tests share: an auth-file with the server's own verifiers, and Npgsql one-liners.</summary>
internal static class PoolingClients
{
    /// <summary>Writes the verifiers of the SCRAM and md5 test users, as the server holds them, to <paramref name="authFile"/>.</summary>
    public static async Task WriteAuthFileAsync(PostgresServer server, string authFile, CancellationToken cancellationToken = default)
    {
        string scram = await server.QueryAsSuperuserAsync($"SELECT rolpassword FROM pg_authid WHERE rolname = '{PostgresServer.ScramUser}'", cancellationToken);
        string md5 = await server.QueryAsSuperuserAsync($"SELECT rolpassword FROM pg_authid WHERE rolname = '{PostgresServer.Md5User}'", cancellationToken);
        await File.WriteAllTextAsync(authFile, $"\"{PostgresServer.ScramUser}\" \"{scram}\"\n\"{PostgresServer.Md5User}\" \"{md5}\"\n", cancellationToken);
    }

    public static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        object? value = await command.ExecuteScalarAsync();
        return value is DBNull ? default! : (T)value!;
    }

    public static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
