using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests;

/// <summary>The shared server is what the other end-to-end tests assume it is.</summary>
[Collection(SharedPostgres.Name)]
public sealed class FixtureTests(PostgresFixture fixture) : IDisposable
{
    private readonly PostgresServer _server = fixture.Server;

    // A hung connection fails its test instead of hanging the run.
    private readonly CancellationTokenSource _testDeadline = new(TimeSpan.FromSeconds(60));

    private CancellationToken Cancellation => _testDeadline.Token;

    public void Dispose() => _testDeadline.Dispose();

    [Theory]
    [InlineData(PostgresServer.TrustUser, null)]
    [InlineData(PostgresServer.Md5User, PostgresServer.Md5Password)]
    [InlineData(PostgresServer.ScramUser, PostgresServer.ScramPassword)]
    public async Task Npgsql_connects_directly_with_each_authentication_method(string user, string? password)
    {
        await using var connection = new NpgsqlConnection(_server.ConnectionString(user, password));
        await connection.OpenAsync(Cancellation);
        await using var command = new NpgsqlCommand("SELECT current_user", connection);

        var currentUser = await command.ExecuteScalarAsync(Cancellation);

        Assert.Equal(user, currentUser);
    }

    [Fact]
    public async Task Md5_user_stores_an_md5_verifier_and_scram_user_a_scram_one()
    {
        await using var connection = new NpgsqlConnection(_server.ConnectionString(PostgresServer.Superuser));
        await connection.OpenAsync(Cancellation);
        await using var command = new NpgsqlCommand(
            "SELECT rolname, left(rolpassword, 13) FROM pg_authid WHERE rolname IN ('md5_user', 'scram_user') ORDER BY rolname",
            connection);
        await using var reader = await command.ExecuteReaderAsync(Cancellation);

        var verifiers = new Dictionary<string, string>();
        while (await reader.ReadAsync(Cancellation))
        {
            verifiers[reader.GetString(0)] = reader.GetString(1);
        }

        Assert.StartsWith("md5", verifiers[PostgresServer.Md5User], StringComparison.Ordinal);
        Assert.StartsWith("SCRAM-SHA-256", verifiers[PostgresServer.ScramUser], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_md5_password_is_refused_with_invalid_password()
    {
        await using var connection = new NpgsqlConnection(_server.ConnectionString(PostgresServer.Md5User, "not_the_password"));

        var error = await Assert.ThrowsAsync<PostgresException>(
            () => connection.OpenAsync(Cancellation));

        Assert.Equal(PostgresErrorCodes.InvalidPassword, error.SqlState);
    }

    [Fact]
    public async Task Psql_runs_a_query_as_a_separate_process()
    {
        var result = await Psql.RunAsync(
            _server.PsqlTarget(PostgresServer.ScramUser, PostgresServer.ScramPassword),
            "SELECT 40 + 2;\n",
            new PsqlOptions { Arguments = ["-At"] },
            Cancellation);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal("42", result.StandardOutput.Trim());
    }

    [Fact]
    public async Task Hll_works_when_the_extension_is_installed()
    {
        if (!_server.HasHll)
        {
            return;
        }

        await using var connection = new NpgsqlConnection(_server.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync(Cancellation);
        await using var command = new NpgsqlCommand("SELECT hll_cardinality(hll_empty())", connection);

        var cardinality = await command.ExecuteScalarAsync(Cancellation);

        Assert.Equal(0.0, Convert.ToDouble(cardinality, System.Globalization.CultureInfo.InvariantCulture));
    }
}
