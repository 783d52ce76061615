using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Relay;

/// <summary>What the upstream server itself says about its backends, asked directly as the superuser.</summary>
internal static class Backends
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    /// <summary>A fresh application_name, so a test can find its own backends and nobody else's.</summary>
    public static string UniqueApplicationName(string purpose) => $"{purpose}-{Guid.NewGuid():N}"[..Math.Min(purpose.Length + 33, 63)];

    public static string WithApplicationName(string connectionString, string applicationName) =>
        new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = applicationName }.ConnectionString;

    public static async Task<long> CountAsync(PostgresServer server, string applicationName, string? state = null)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionString(PostgresServer.Superuser));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = @name AND (@state::text IS NULL OR state = @state)",
            connection);
        command.Parameters.AddWithValue("name", applicationName);
        command.Parameters.AddWithValue("state", NpgsqlTypes.NpgsqlDbType.Text, (object?)state ?? DBNull.Value);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    public static Task WaitUntilGoneAsync(PostgresServer server, string applicationName) =>
        Waiting.WaitUntilAsync(
            async () => await CountAsync(server, applicationName) == 0,
            Deadline,
            $"no backend of application_name {applicationName} is left on the server");

    public static Task WaitUntilCountAsync(PostgresServer server, string applicationName, long count, string? state = null) =>
        Waiting.WaitUntilAsync(
            async () => await CountAsync(server, applicationName, state) == count,
            Deadline,
            $"{count} backends of application_name {applicationName} are {state ?? "connected"}");
}
