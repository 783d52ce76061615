using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using PgProxy.EndToEnd.Tests.Admin;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.Protocol.Authentication;

namespace PgProxy.EndToEnd.Tests.Security;

/// <summary>
/// Tried as a new user would: the pgproxy process with a query interceptor, the intercept log, a query log with the
/// statements' own text, log-level debug and the admin console, a workload that logs in with SCRAM and md5 and changes
/// passwords in every form (plain, pre-hashed as psql's \password sends it, md5, simple and extended protocol, one left
/// waiting on a lock while the console looks at it). Afterwards no log file, no line of output and no console answer
/// holds a password or a SCRAM proof.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed partial class SecretsStayOutOfLogsTests(PostgresFixture fixture) : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private readonly ConsoleSetup console = ConsoleSetup.Create();

    public void Dispose() => console.Dispose();

    [Fact]
    public async Task No_log_and_no_console_answer_holds_a_password_or_a_scram_proof_after_a_workload()
    {
        string suffix = Guid.NewGuid().ToString("N")[..8];
        string role = $"pw_probe_{suffix}";
        string[] secrets = [$"Plain-Secret-{suffix}", $"Hashed-Secret-{suffix}", $"Md5-Secret-{suffix}", $"Locked-Secret-{suffix}", $"Waiting-Secret-{suffix}"];
        string scramVerifier = ScramVerifier.FromPassword(secrets[1], RandomNumberGenerator.GetBytes(16), 4096).ToString();
        string md5Verifier = PasswordMessages.Md5Verifier(role, secrets[2]);
        using ConfigDirectory directory = ConfigDirectory.Create(Configuration());
        Directory.CreateDirectory(Path.Combine(directory.Path, "plugins"));
        await File.WriteAllTextAsync(Path.Combine(directory.Path, "plugins", "probe.cs"), """
            public static class Probe
            {
                // Rewrites every query, so the intercept log writes each one before and after.
                public static string RewriteQuery(string query) => "/* seen by probe */ " + query;

                // Passes every query on unchanged, which log-level debug writes too, and writes it itself, as a plugin may.
                public static string Observe(string query, PgProxy.Abstractions.ISessionContext context)
                {
                    Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(context.Logger, "probe saw {Query}", query);
                    return query;
                }
            }
            """);
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1, console: true);
        var consoleTarget = new PsqlTarget("127.0.0.1", proxy.ConsolePort, ConsoleSetup.User, "pgproxy", ConsoleSetup.Password);
        var answers = new StringBuilder();

        // Logins that carry SCRAM proofs and an md5 hash through the proxy: psql (libpq) and Npgsql.
        foreach ((string user, string password) in new[] { (PostgresServer.ScramUser, PostgresServer.ScramPassword), (PostgresServer.Md5User, PostgresServer.Md5Password) })
        {
            ProcessResult login = await Psql.RunAsync(new PsqlTarget("127.0.0.1", proxy.PortOf("proxy"), user, PostgresServer.Database, password), "SELECT 1;\n");
            Assert.True(login.Succeeded, login.ToString());
            answers.AppendLine(login.StandardOutput).AppendLine(login.StandardError);
            await using var connection = new NpgsqlConnection(ConnectionString(proxy, user, password));
            await connection.OpenAsync();
        }

        // Passwords set in every form, in the simple protocol (psql) and the extended one (Npgsql).
        ProcessResult changes = await Psql.RunAsync(
            new PsqlTarget("127.0.0.1", proxy.PortOf("proxy"), PostgresServer.Superuser, PostgresServer.Database),
            $"""
            \set ON_ERROR_STOP on
            CREATE ROLE {role} NOLOGIN PASSWORD '{secrets[0]}';
            ALTER USER {role} PASSWORD '{scramVerifier}';
            """);
        Assert.True(changes.Succeeded, changes.ToString());
        answers.AppendLine(changes.StandardOutput).AppendLine(changes.StandardError);
        await using var holder = new NpgsqlConnection(ConnectionString(proxy, PostgresServer.Superuser, null, "pw-holder"));
        await holder.OpenAsync();
        await ExecuteAsync(holder, $"ALTER ROLE {role} WITH ENCRYPTED PASSWORD '{md5Verifier}'");

        // One change holds the role's row; a second waits on it, so the console sees a statement with a password running.
        await using var transaction = await holder.BeginTransactionAsync();
        await ExecuteAsync(holder, $"ALTER ROLE {role} PASSWORD '{secrets[3]}'");
        await using var waiter = new NpgsqlConnection(ConnectionString(proxy, PostgresServer.Superuser, null, "pw-waiter"));
        await waiter.OpenAsync();
        Task waiting = ExecuteAsync(waiter, $"ALTER ROLE {role} PASSWORD '{secrets[4]}'");
        ConsoleOutput? running = null;
        await Waiting.WaitUntilAsync(
            async () =>
            {
                running = await ConsolePsql.QueryAsync(consoleTarget, "SHOW SESSIONS");
                return running.Where("application_name", "pw-waiter").Any(row => running.Value(row, "state") == "active" && running.Value(row, "statement").Length > 0);
            },
            Deadline,
            "SHOW SESSIONS shows the waiting ALTER ROLE as active");
        IReadOnlyList<string> waiterRow = running!.Where("application_name", "pw-waiter").Single();
        Assert.StartsWith("ALTER ROLE", running.Value(waiterRow, "statement"), StringComparison.OrdinalIgnoreCase);
        answers.AppendLine(running.Process.StandardOutput);
        await transaction.CommitAsync();
        try
        {
            await waiting.WaitAsync(Deadline);
        }
        catch (PostgresException e) when (e.SqlState == "XX000")
        {
            // "tuple concurrently updated": PostgreSQL's answer to the one that waited on the row, once the first commits.
        }

        await ExecuteAsync(holder, $"DROP ROLE {role}");

        foreach (string command in new[] { "SHOW SESSIONS", "SHOW QUERIES", "SHOW STATS", "SHOW CONFIG", "SHOW PLUGINS", "SHOW INSTANCES" })
        {
            ConsoleOutput output = await ConsolePsql.QueryAsync(consoleTarget, command);
            answers.AppendLine(output.Process.StandardOutput).AppendLine(output.Process.StandardError);
        }

        // Stopped, so every log is flushed and closed before it is read.
        await proxy.SignalAsync(System.Runtime.InteropServices.PosixSignal.SIGTERM);
        Assert.Equal(0, await proxy.WaitForExitAsync(Deadline));
        Dictionary<string, string> logs = Directory.EnumerateFiles(Path.Combine(directory.Path, "logs"), "*", SearchOption.AllDirectories)
            .ToDictionary(file => file, File.ReadAllText);
        foreach ((string file, string text) in logs.ToList())
        {
            // JSON lines escape quotes and '+': their values are checked as they read, not only as written.
            logs[file + " (JSON values)"] = string.Join('\n', text.Split('\n').Where(line => line.StartsWith('{')).Select(Values));
        }

        logs["pgproxy output"] = proxy.Output;
        logs["console answers"] = answers.ToString();

        // The workload was logged (and shown), so absence below means redacted, not unseen.
        Assert.Contains(logs, log => log.Key.EndsWith("intercept.log", StringComparison.Ordinal) && log.Value.Contains($"ALTER USER {role} PASSWORD '[password redacted]'", StringComparison.Ordinal));
        Assert.Contains(logs, log => log.Key.EndsWith("queries.log (JSON values)", StringComparison.Ordinal) && log.Value.Contains($"ALTER ROLE {role} PASSWORD '[password redacted]'", StringComparison.Ordinal));
        string interceptLog = logs.Single(log => log.Key.EndsWith("intercept.log", StringComparison.Ordinal)).Value;
        Assert.Contains($"ALTER ROLE {role} WITH ENCRYPTED PASSWORD '[password redacted]'", interceptLog, StringComparison.Ordinal);
        Assert.Contains($"probe saw /* seen by probe */ ALTER USER {role} PASSWORD '[password redacted]'", interceptLog, StringComparison.Ordinal);
        string[] forbidden =
        [
            .. secrets,
            scramVerifier,
            .. scramVerifier.Split('$', ':')[2..], // the salt, stored key and server key alone
            md5Verifier,
            PostgresServer.ScramPassword,
            PostgresServer.Md5Password,
            ConsoleSetup.Password,
        ];
        foreach ((string source, string text) in logs)
        {
            foreach (string secret in forbidden.Where(s => s.Length >= 8))
            {
                Assert.False(text.Contains(secret, StringComparison.Ordinal), $"{source} holds {secret}");
            }

            Assert.False(ScramProof().IsMatch(text), $"{source} holds a SCRAM client-final or server-final message: {ScramProof().Match(text).Value}");
        }
    }

    private string Configuration() => string.Create(CultureInfo.InvariantCulture, $"""
        plugins:
          - probe
        settings:
          log-level: debug
          plugin-dir: plugins
          general-log: logs/general.log
          intercept-log: logs/intercept.log
        query-log:
          file: logs/queries.log
          format: json
          parameters: true
        admin:
          listen: {"{"}host: 127.0.0.1, port: 0{"}"}
          users: [{ConsoleSetup.User}]
          auth-file: {console.AuthFile}
        instances:
          - listen:
              name: proxy
              host: 127.0.0.1
              port: 0
            redirect:
              name: postgresql
              host: {fixture.Server.Host}
              port: {fixture.Server.Port}
            intercept:
              commands:
                queries:
                  - plugin: probe
                    function: rewrite_query
                  - plugin: probe
                    function: observe
        """);

    private static string ConnectionString(ProxyProcess proxy, string user, string? password, string applicationName = "pw-login") =>
        new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = proxy.PortOf("proxy"),
            Username = user,
            Password = password,
            Database = PostgresServer.Database,
            ApplicationName = applicationName,
            Pooling = false,
            Timeout = 15,
        }.ConnectionString;

    private static string Values(string jsonLine)
    {
        using var line = JsonDocument.Parse(jsonLine);
        return string.Join(' ', line.RootElement.EnumerateObject().Select(property => property.Value.ToString()));
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>A SCRAM client-final (<c>c=…,r=…,p=proof</c>) or server-final (<c>v=signature</c>) message, SHA-256 sized.</summary>
    [GeneratedRegex(@"(^|[,\s""])(p|v)=[A-Za-z0-9+/]{43}=")]
    private static partial Regex ScramProof();
}
