using Npgsql;
using NpgsqlTypes;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Relay;

/// <summary>COPY both ways through the proxy, in binary, text and raw form, and a COPY the server rejects half-way.</summary>
[Collection(SharedPostgres.Name)]
public sealed class NpgsqlCopyTests(PostgresFixture fixture)
{
    private const int Rows = 20_000;

    [Fact]
    public async Task A_binary_import_stores_every_row_and_a_binary_export_reads_them_back()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using NpgsqlConnection connection = await OpenWithTableAsync(proxy, "CREATE TEMP TABLE copy_binary (id int, label text, payload bytea)");

        await using (NpgsqlBinaryImporter importer = await connection.BeginBinaryImportAsync("COPY copy_binary FROM STDIN (FORMAT BINARY)"))
        {
            for (int i = 0; i < Rows; i++)
            {
                await importer.StartRowAsync();
                await importer.WriteAsync(i, NpgsqlDbType.Integer);
                await importer.WriteAsync($"row {i}", NpgsqlDbType.Text);
                await importer.WriteAsync(BitConverter.GetBytes(i), NpgsqlDbType.Bytea);
            }

            Assert.Equal((ulong)Rows, await importer.CompleteAsync());
        }

        await using (var check = new NpgsqlCommand("SELECT count(*), sum(id), count(*) FILTER (WHERE label = 'row ' || id) FROM copy_binary", connection))
        await using (NpgsqlDataReader reader = await check.ExecuteReaderAsync())
        {
            Assert.True(await reader.ReadAsync());
            Assert.Equal((long)Rows, reader.GetInt64(0));
            Assert.Equal((long)Rows * (Rows - 1) / 2, reader.GetInt64(1));
            Assert.Equal((long)Rows, reader.GetInt64(2));
        }

        int exported = 0;
        await using (NpgsqlBinaryExporter exporter = await connection.BeginBinaryExportAsync("COPY (SELECT id, label, payload FROM copy_binary ORDER BY id) TO STDOUT (FORMAT BINARY)"))
        {
            while (await exporter.StartRowAsync() != -1)
            {
                int id = await exporter.ReadAsync<int>();
                Assert.Equal(exported, id);
                Assert.Equal($"row {id}", await exporter.ReadAsync<string>());
                Assert.Equal(BitConverter.GetBytes(id), await exporter.ReadAsync<byte[]>());
                exported++;
            }
        }

        Assert.Equal(Rows, exported);
    }

    [Fact]
    public async Task A_text_import_stores_every_line_and_a_text_export_returns_them()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using NpgsqlConnection connection = await OpenWithTableAsync(proxy, "CREATE TEMP TABLE copy_text (id int, word text)");
        string[] lines = Enumerable.Range(0, Rows).Select(i => $"{i}\tword-{i}-ünïcode").ToArray();

        using (TextWriter writer = await connection.BeginTextImportAsync("COPY copy_text FROM STDIN"))
        {
            foreach (string line in lines)
            {
                await writer.WriteAsync(line + "\n");
            }
        }

        var exported = new List<string>();
        using (TextReader reader = await connection.BeginTextExportAsync("COPY (SELECT * FROM copy_text ORDER BY id) TO STDOUT"))
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                exported.Add(line);
            }
        }

        Assert.Equal(lines, exported);
    }

    [Fact]
    public async Task A_raw_binary_copy_gives_the_same_bytes_as_directly_and_can_be_imported_again()
    {
        const string Export = "COPY (SELECT i, i::text || 'x', i * 1.5 FROM generate_series(1, 50000) i) TO STDOUT (FORMAT BINARY)";
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        byte[] direct = await RawExportAsync(fixture.Server.ConnectionString(PostgresServer.TrustUser), Export);
        await using NpgsqlConnection connection = await OpenWithTableAsync(proxy, "CREATE TEMP TABLE copy_raw (i int, t text, n numeric)");

        byte[] proxied = await RawExportAsync(connection, Export);
        Assert.Equal(direct, proxied);

        await using (NpgsqlRawCopyStream import = await connection.BeginRawBinaryCopyAsync("COPY copy_raw FROM STDIN (FORMAT BINARY)"))
        {
            await import.WriteAsync(proxied);
        }

        await using var check = new NpgsqlCommand("SELECT count(*), sum(i), sum(n) FROM copy_raw", connection);
        await using NpgsqlDataReader reader = await check.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(50_000L, reader.GetInt64(0));
        Assert.Equal(50_000L * 50_001 / 2, reader.GetInt64(1));
        Assert.Equal(50_000m * 50_001 / 2 * 1.5m, reader.GetDecimal(2));
    }

    [Fact]
    public async Task Bad_data_in_the_middle_of_a_copy_gives_the_server_sqlstate_and_the_session_goes_on()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server);
        await using NpgsqlConnection connection = await OpenWithTableAsync(proxy, "CREATE TEMP TABLE copy_bad (n int)");

        PostgresException error = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            using TextWriter writer = await connection.BeginTextImportAsync("COPY copy_bad FROM STDIN");
            for (int i = 0; i < 5000; i++)
            {
                await writer.WriteAsync(i == 2500 ? "not a number\n" : $"{i}\n");
            }
        });

        Assert.Equal(PostgresErrorCodes.InvalidTextRepresentation, error.SqlState);
        await using var count = new NpgsqlCommand("SELECT count(*) FROM copy_bad", connection);
        Assert.Equal(0L, await count.ExecuteScalarAsync());
    }

    private static async Task<NpgsqlConnection> OpenWithTableAsync(ProxyHarness proxy, string createTable)
    {
        var connection = new NpgsqlConnection(proxy.ConnectionString(PostgresServer.TrustUser));
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand(createTable, connection);
        await create.ExecuteNonQueryAsync();
        return connection;
    }

    private static async Task<byte[]> RawExportAsync(string connectionString, string copy)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        return await RawExportAsync(connection, copy);
    }

    private static async Task<byte[]> RawExportAsync(NpgsqlConnection connection, string copy)
    {
        using var bytes = new MemoryStream();
        await using (NpgsqlRawCopyStream export = await connection.BeginRawBinaryCopyAsync(copy))
        {
            await export.CopyToAsync(bytes);
        }

        return bytes.ToArray();
    }
}
