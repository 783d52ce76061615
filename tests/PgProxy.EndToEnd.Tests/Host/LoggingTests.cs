using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Npgsql;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>The logs of the pgproxy process: files where the configuration says, session lines, and never a password.</summary>
[Collection(SharedPostgres.Name)]
public sealed class LoggingTests(PostgresFixture fixture)
{
    private static readonly TimeSpan ExitDeadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Sessions_are_logged_to_file_and_console_and_passwords_never_are()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server).Replace(
            "  log-level: info",
            """
              log-level: trace
              general-log: logs/nested/general.log
              intercept-log: logs/nested/intercept.log
            """,
            StringComparison.Ordinal));
        string logDirectory = Path.Combine(directory.Path, "logs", "nested");
        Assert.False(Directory.Exists(Path.Combine(directory.Path, "logs")));

        // Started from another directory: relative log paths belong to the configuration file's directory.
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, workingDirectory: Path.GetTempPath());
        int port = proxy.PortOf("proxy");
        string applicationName = "logging-" + Guid.NewGuid().ToString("N")[..8];
        foreach ((string user, string password) in new[] { (PostgresServer.Md5User, PostgresServer.Md5Password), (PostgresServer.ScramUser, PostgresServer.ScramPassword) })
        {
            var builder = new NpgsqlConnectionStringBuilder
            {
                Host = "127.0.0.1",
                Port = port,
                Username = user,
                Password = password,
                Database = PostgresServer.Database,
                Pooling = false,
                ApplicationName = applicationName,
                Timeout = 20,
            };
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT current_user", connection);
            Assert.Equal(user, await command.ExecuteScalarAsync());
        }

        // Both sessions closed before the stop signal: their "closed" lines are written by the sessions themselves.
        await proxy.WaitForOutputAsync(
            output => Regex.Count(output, @"Session \d+ closed:") >= 2,
            TimeSpan.FromSeconds(20),
            "both sessions are logged as closed on the console");
        await proxy.SignalAsync(PosixSignal.SIGTERM);
        Assert.Equal(0, await proxy.WaitForExitAsync(ExitDeadline));

        string generalLogPath = Path.Combine(logDirectory, "general.log");
        Assert.True(File.Exists(generalLogPath), $"no general log at {generalLogPath}; files: {string.Join(", ", Directory.EnumerateFiles(directory.Path, "*", SearchOption.AllDirectories))}");
        string generalLog = await File.ReadAllTextAsync(generalLogPath);
        string console = proxy.Output;

        foreach ((string name, string text) in new[] { ("general log", generalLog), ("console", console) })
        {
            foreach (string user in new[] { PostgresServer.Md5User, PostgresServer.ScramUser })
            {
                string[] opened = Lines(text, $@"Session \d+ opened: client 127\.0\.0\.1:\d+, user {user}, database {PostgresServer.Database}\b");
                string[] closed = Lines(text, $@"Session \d+ closed: client 127\.0\.0\.1:\d+, user {user}, database {PostgresServer.Database}, duration \d+\.\d+ s, [1-9]\d* bytes from client, [1-9]\d* bytes to client");
                Assert.True(opened.Length == 1, $"{name}: expected one 'opened' line for {user}, got {opened.Length}:\n{text}");
                Assert.True(closed.Length == 1, $"{name}: expected one 'closed' line for {user}, got {closed.Length}:\n{text}");
            }
        }

        // Trace level logs everything the proxy has to say; none of it may be a password or a password message.
        var everything = new List<(string Name, string Text)> { ("console", console) };
        foreach (string file in Directory.EnumerateFiles(Path.Combine(directory.Path, "logs"), "*", SearchOption.AllDirectories))
        {
            everything.Add((file, await File.ReadAllTextAsync(file)));
        }

        foreach ((string name, string text) in everything)
        {
            Assert.DoesNotContain(PostgresServer.Md5Password, text, StringComparison.Ordinal);
            Assert.DoesNotContain(PostgresServer.ScramPassword, text, StringComparison.Ordinal);
            Assert.DoesNotMatch(@"md5[0-9a-f]{32}", text);
            // The SCRAM client-first message starts "n,,n=", the client-final message "c=biws,r=".
            Assert.DoesNotContain("n,,n=", text, StringComparison.Ordinal);
            Assert.DoesNotContain("c=biws", text, StringComparison.Ordinal);
        }
    }

    private static string[] Lines(string text, string pattern) =>
        text.Split('\n').Where(line => Regex.IsMatch(line, pattern)).ToArray();
}
