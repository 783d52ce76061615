using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>
/// Packet loss and latency between the proxy and PostgreSQL: the server runs in a network namespace of the test's own,
/// reached over a veth pair on a private /30 with <c>tc netem loss 5% delay 100ms</c> on both ends. Results stay
/// correct, only slower. Needs root, <c>ip</c> and <c>tc</c> (scripts/test.sh installs iproute2); otherwise it says why
/// and does nothing, as it does on a kernel without the netem qdisc.
/// </summary>
public sealed class NetworkFaultTests(ITestOutputHelper output)
{
    private const int Clients = 4;

    [Fact]
    public async Task Through_5_percent_loss_and_100_ms_delay_every_result_is_correct()
    {
        if (!Environment.IsPrivilegedProcess || !OnPath("ip") || !OnPath("tc"))
        {
            output.WriteLine("skipped: needs root and ip/tc (iproute2) to create a network namespace with netem");
            return;
        }

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        string id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string ns = $"pgp{id}";
        string hostSide = $"pgph{id}";
        string serverSide = $"pgps{id}";
        string subnet = string.Create(CultureInfo.InvariantCulture, $"10.213.{RandomNumberGenerator.GetInt32(256)}");
        string serverAddress = $"{subnet}.2";
        try
        {
            await RunAsync("ip", "netns", "add", ns);
            await RunAsync("ip", "link", "add", hostSide, "type", "veth", "peer", "name", serverSide);
            await RunAsync("ip", "link", "set", serverSide, "netns", ns);
            await RunAsync("ip", "addr", "add", $"{subnet}.1/30", "dev", hostSide);
            await RunAsync("ip", "link", "set", hostSide, "up");
            await RunAsync("ip", "netns", "exec", ns, "ip", "addr", "add", $"{serverAddress}/30", "dev", serverSide);
            await RunAsync("ip", "netns", "exec", ns, "ip", "link", "set", serverSide, "up");
            await RunAsync("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up");
            var options = new PostgresServerOptions
            {
                ListenAddress = serverAddress,
                NetworkNamespace = ns,
                HostBasedAuthentication = [$"host all all {subnet}.0/30 trust"],
            };
            await using PostgresServer server = await PostgresServer.StartNewAsync(options, deadline.Token);
            ProcessResult netem = await ProcessRunner.RunAsync("tc", ["qdisc", "add", "dev", hostSide, "root", "netem", "loss", "5%", "delay", "100ms"], TimeSpan.FromSeconds(30));
            if (!netem.Succeeded && netem.ToString().Contains("qdisc kind is unknown", StringComparison.Ordinal))
            {
                output.WriteLine("skipped: this kernel has no netem qdisc (sch_netem); the namespace, the veth pair and the server in it worked");
                return;
            }

            Assert.True(netem.Succeeded, $"tc netem failed: {netem}");
            await RunAsync("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", serverSide, "root", "netem", "loss", "5%", "delay", "100ms");
            await using ProxyHarness proxy = await ProxyHarness.StartAsync(server);
            string connectionString = proxy.ConnectionString(PostgresServer.TrustUser) + ";Timeout=30;Command Timeout=60";
            var clock = Stopwatch.StartNew();

            long[][] results = await Task.WhenAll(Enumerable.Range(0, Clients).Select(client => Task.Run(async () =>
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(deadline.Token);
                var sums = new List<long>();
                for (int i = 1; i <= 3; i++)
                {
                    await using var command = new NpgsqlCommand($"SELECT sum(n) FROM generate_series(1, {client * 1000 + i}) AS n", connection);
                    sums.Add((long)(await command.ExecuteScalarAsync(deadline.Token))!);
                }

                // A multi-row result: 20,000 rows of 100 bytes, many segments across the lossy link.
                await using (var rows = new NpgsqlCommand("SELECT n, repeat('x', 100) FROM generate_series(1, 20000) AS n", connection))
                await using (NpgsqlDataReader reader = await rows.ExecuteReaderAsync(deadline.Token))
                {
                    long sum = 0;
                    while (await reader.ReadAsync(deadline.Token))
                    {
                        Assert.Equal(100, reader.GetString(1).Length);
                        sum += reader.GetInt32(0);
                    }

                    sums.Add(sum);
                }

                return sums.ToArray();
            })));
            TimeSpan queried = clock.Elapsed;

            // COPY in, then out, on one more session.
            await using var copying = new NpgsqlConnection(connectionString);
            await copying.OpenAsync(deadline.Token);
            await new NpgsqlCommand("CREATE TEMP TABLE copied (n int, line text)", copying).ExecuteNonQueryAsync(deadline.Token);
            await using (NpgsqlBinaryImporter importer = await copying.BeginBinaryImportAsync("COPY copied FROM STDIN (FORMAT BINARY)", deadline.Token))
            {
                for (int n = 1; n <= 5000; n++)
                {
                    await importer.StartRowAsync(deadline.Token);
                    await importer.WriteAsync(n, deadline.Token);
                    await importer.WriteAsync($"line {n}", deadline.Token);
                }

                Assert.Equal(5000UL, await importer.CompleteAsync(deadline.Token));
            }

            int copiedOut = 0;
            using (TextReader reader = await copying.BeginTextExportAsync("COPY copied TO STDOUT", deadline.Token))
            {
                while (await reader.ReadLineAsync(deadline.Token) is { } line)
                {
                    Assert.Equal($"{copiedOut + 1}\tline {copiedOut + 1}", line);
                    copiedOut++;
                }
            }

            TimeSpan total = clock.Elapsed;
            string qdisc = (await RunAsync("tc", "-s", "qdisc", "show", "dev", hostSide)).StandardOutput;
            output.WriteLine($"{Clients} clients: queries and 20,000-row results in {queried.TotalMilliseconds:0} ms; with COPY of 5,000 rows in and out, {total.TotalMilliseconds:0} ms. Host side qdisc:\n{qdisc}");
            for (int client = 0; client < Clients; client++)
            {
                long[] expected = [.. Enumerable.Range(1, 3).Select(i => Triangle(client * 1000 + i)), Triangle(20000)];
                Assert.Equal(expected, results[client]);
            }

            Assert.Equal(5000, copiedOut);
            Assert.Contains("dropped", qdisc, StringComparison.Ordinal);
            Assert.DoesNotContain(" dropped 0,", qdisc, StringComparison.Ordinal);
        }
        finally
        {
            // Deleting the namespace deletes its veth end, and with it the peer.
            await ProcessRunner.RunAsync("ip", ["netns", "del", ns], TimeSpan.FromSeconds(30));
            await ProcessRunner.RunAsync("ip", ["link", "del", hostSide], TimeSpan.FromSeconds(30));
        }
    }

    private static long Triangle(long n) => n * (n + 1) / 2;

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':').Any(directory => File.Exists(Path.Combine(directory, program)));

    private static async Task<ProcessResult> RunAsync(string program, params string[] arguments)
    {
        ProcessResult result = await ProcessRunner.RunAsync(program, arguments, TimeSpan.FromSeconds(30));
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} failed: {result}");
        }

        return result;
    }
}
