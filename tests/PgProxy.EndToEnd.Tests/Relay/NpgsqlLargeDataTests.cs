using System.Security.Cryptography;
using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Relay;

/// <summary>Big messages and big results through the proxy, and the message size limit.</summary>
[Collection(SharedPostgres.Name)]
public sealed class NpgsqlLargeDataTests(PostgresFixture fixture)
{
    // md5 here is a checksum PostgreSQL can compute too, not security.
#pragma warning disable CA5351
    [Fact]
    public async Task A_value_of_more_than_100_MB_goes_up_and_comes_back_intact()
    {
        const int Size = (100 * 1024 * 1024) + 12345;
        var payload = new byte[Size];
        new Random(2).NextBytes(payload);
        string expectedMd5 = Convert.ToHexStringLower(MD5.HashData(payload));
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using (var create = new NpgsqlCommand("CREATE TEMP TABLE big_value (payload bytea)", connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        await using (var insert = new NpgsqlCommand("INSERT INTO big_value VALUES (@payload)", connection))
        {
            insert.Parameters.AddWithValue("payload", payload);
            Assert.Equal(1, await insert.ExecuteNonQueryAsync());
        }

        await using (var hash = new NpgsqlCommand("SELECT md5(payload), length(payload) FROM big_value", connection))
        await using (NpgsqlDataReader reader = await hash.ExecuteReaderAsync())
        {
            Assert.True(await reader.ReadAsync());
            Assert.Equal(expectedMd5, reader.GetString(0));
            Assert.Equal(Size, reader.GetInt32(1));
        }

        await using var read = new NpgsqlCommand("SELECT payload FROM big_value", connection);
        byte[] returned = (byte[])(await read.ExecuteScalarAsync())!;
        Assert.Equal(Size, returned.Length);
        Assert.Equal(expectedMd5, Convert.ToHexStringLower(MD5.HashData(returned)));
    }

#pragma warning restore CA5351

    [Fact]
    public async Task A_message_above_max_message_size_gets_08P01_and_the_proxy_serves_the_next_client()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, new InstanceLimits { MaxMessageSize = 1024 * 1024 });
        await using (var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser)))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT length(@payload)", connection);
            command.Parameters.AddWithValue("payload", new byte[2 * 1024 * 1024]);

            Exception error = await Assert.ThrowsAnyAsync<NpgsqlException>(() => command.ExecuteScalarAsync());
            PostgresException? serverError = error as PostgresException ?? error.InnerException as PostgresException;
            Assert.True(serverError is not null, $"expected an ErrorResponse from the proxy, got {error}");
            Assert.Equal(PostgresErrorCodes.ProtocolViolation, serverError.SqlState);
        }

        await using var next = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await next.OpenAsync();
        await using var small = new NpgsqlCommand("SELECT length(@payload)", next);
        small.Parameters.AddWithValue("payload", new byte[512 * 1024]);
        Assert.Equal(512 * 1024, await small.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Two_million_rows_stream_through_complete()
    {
        const int Rows = 2_000_000;
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT i, 'row-' || i || '-padding-to-make-each-row-a-little-larger' FROM generate_series(1, @rows) i", connection);
        command.Parameters.AddWithValue("rows", Rows);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess);

        long count = 0;
        long sum = 0;
        long textChecksum = 0;
        while (await reader.ReadAsync())
        {
            int i = reader.GetInt32(0);
            string text = reader.GetString(1);
            count++;
            sum += i;
            textChecksum += text.Length + (text.StartsWith($"row-{i}-", StringComparison.Ordinal) ? 0 : 1_000_000_000L);
        }

        long expectedTextChecksum = Enumerable.Range(1, Rows).Sum(i => (long)$"row-{i}-padding-to-make-each-row-a-little-larger".Length);
        Assert.Equal(Rows, count);
        Assert.Equal((long)Rows * (Rows + 1) / 2, sum);
        Assert.Equal(expectedTextChecksum, textChecksum);
    }
}
