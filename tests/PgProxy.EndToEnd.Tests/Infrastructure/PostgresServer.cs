using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A throwaway PostgreSQL server of the machine's own installation: its own data directory in a
/// temporary folder, a free port on 127.0.0.1, one role per authentication method, and the
/// <c>hll</c> extension when it is installed. Start one with <see cref="StartNewAsync(CancellationToken)"/>;
/// most tests share the one of <see cref="PostgresFixture"/> instead.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    public const string Superuser = "postgres";
    public const string TrustUser = "trust_user";
    public const string Md5User = "md5_user";
    public const string Md5Password = "md5_pass";
    public const string ScramUser = "scram_user";
    public const string ScramPassword = "scram_pass";
    public const string CleartextUser = "password_user";
    public const string CleartextPassword = "clear_pass";
    public const string Database = "pgproxy_test";

    private const int PortAttempts = 3;
    private static readonly TimeSpan StartDeadline = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan CommandDeadline = TimeSpan.FromSeconds(120);

    private readonly string _binDirectory;
    private readonly string _rootDirectory;
    private readonly PostgresServerOptions _options;
    private bool _running;

    private PostgresServer(string binDirectory, string rootDirectory, PostgresServerOptions options)
    {
        _binDirectory = binDirectory;
        _rootDirectory = rootDirectory;
        _options = options;
        Host = options.ListenAddress ?? IPAddress.Loopback.ToString();
    }

    public string Host { get; }

    public int Port { get; private set; }

    /// <summary>Whether the <c>hll</c> extension is installed and created in <see cref="Database"/>.</summary>
    public bool HasHll { get; private set; }

    public string DataDirectory => Path.Combine(_rootDirectory, "data");

    /// <summary>The server's log (pg_ctl -l): read it when a test wants to know what the server saw.</summary>
    public string LogFile => Path.Combine(_rootDirectory, "postgres.log");

    private string SettingsFile => Path.Combine(_rootDirectory, "pgproxy-test.conf");

    /// <summary>
    /// Creates, configures and starts a new server. Throws <see cref="InvalidOperationException"/> naming
    /// the packages to install, with the server log's tail, when PostgreSQL is missing or will not start.
    /// </summary>
    public static Task<PostgresServer> StartNewAsync(CancellationToken cancellationToken = default) =>
        StartNewAsync(new PostgresServerOptions(), cancellationToken);

    /// <summary>As <see cref="StartNewAsync(CancellationToken)"/>, with more files and settings (TLS, say).</summary>
    public static async Task<PostgresServer> StartNewAsync(PostgresServerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var binDirectory = PostgresInstallation.FindBinDirectory();
        var rootDirectory = Directory.CreateTempSubdirectory("pgproxy-pg-").FullName;
        var server = new PostgresServer(binDirectory, rootDirectory, options);
        try
        {
            await server.InitializeDataDirectoryAsync(cancellationToken);
            await server.StartOnAFreePortAsync(cancellationToken);
            await server.CreateRolesAndDatabaseAsync(cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>An Npgsql connection string to this server, without pooling so each open is a new session.</summary>
    public string ConnectionString(string user, string? password = null, string database = Database) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = Port,
            Username = user,
            Password = password,
            Database = database,
            Pooling = false,
            Timeout = 15,
        }.ConnectionString;

    /// <summary>Where psql connects to reach this server directly.</summary>
    public PsqlTarget PsqlTarget(string user, string? password = null, string database = Database) =>
        new(Host, Port, user, database, password);

    /// <summary>Starts the server again on the same port and data directory after <see cref="StopAsync"/>.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        var result = await PgCtlAsync(["start", "-w", "-t", Seconds(StartDeadline), "-l", LogFile], cancellationToken);
        if (!result.Succeeded)
        {
            throw Failure($"pg_ctl start failed on port {Port}", result);
        }

        _running = true;
    }

    /// <summary>Stops the server (fast shutdown: sessions are ended, not waited for).</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => StopWithModeAsync("fast", cancellationToken);

    /// <summary><c>pg_ctl stop -m immediate</c>: every backend is killed at once, as in a crash; the data directory stays.</summary>
    public Task StopImmediatelyAsync(CancellationToken cancellationToken = default) => StopWithModeAsync("immediate", cancellationToken);

    /// <summary>Stops the server at once and deletes its data directory.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            // Immediate: the data is thrown away, so nothing needs a clean checkpoint.
            await StopWithModeAsync("immediate", CancellationToken.None);
        }
        finally
        {
            DeleteRootDirectory();
        }
    }

    /// <summary>The last lines of the server log, for failure messages.</summary>
    public string LogTail(int lines = 40)
    {
        try
        {
            return string.Join('\n', File.ReadLines(LogFile).TakeLast(lines));
        }
        catch (IOException)
        {
            return "(no server log)";
        }
        catch (UnauthorizedAccessException)
        {
            return "(server log not readable)";
        }
    }

    private async Task StopWithModeAsync(string mode, CancellationToken cancellationToken)
    {
        if (!_running)
        {
            return;
        }

        var result = await PgCtlAsync(["stop", "-w", "-t", Seconds(StartDeadline), "-m", mode], cancellationToken);
        if (!result.Succeeded)
        {
            throw Failure($"pg_ctl stop -m {mode} failed", result);
        }

        _running = false;
    }

    private async Task InitializeDataDirectoryAsync(CancellationToken cancellationToken)
    {
        await PostgresInstallation.GiveToServerUserAsync(_rootDirectory, cancellationToken);
        var result = await PostgresInstallation.RunServerProgramAsync(
            Path.Combine(_binDirectory, "initdb"),
            ["-D", DataDirectory, "-U", Superuser, "-A", "trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
            _rootDirectory,
            CommandDeadline,
            cancellationToken);
        if (!result.Succeeded)
        {
            throw Failure("initdb failed", result);
        }

        await File.WriteAllTextAsync(
            Path.Combine(DataDirectory, "pg_hba.conf"),
            HostBasedAuthentication + string.Join('\n', _options.HostBasedAuthentication) + "\n",
            cancellationToken);
        foreach (var (name, content) in _options.Files)
        {
            // Owner-only: PostgreSQL refuses a private key others can read.
            var file = Path.Combine(_rootDirectory, name);
            await File.WriteAllTextAsync(file, content, cancellationToken);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
        }

        await File.AppendAllTextAsync(
            Path.Combine(DataDirectory, "postgresql.conf"),
            $"\n# Settings of the PgProxy test fixture (port and sockets vary per run).\ninclude '{SettingsFile}'\n",
            cancellationToken);
    }

    // One line per role and method; the superuser and trust_user need no password.
    private const string HostBasedAuthentication = """
        # TYPE  DATABASE  USER        ADDRESS       METHOD
        local   all       postgres                  trust
        host    all       postgres    127.0.0.1/32  trust
        local   all       trust_user                trust
        host    all       trust_user  127.0.0.1/32  trust
        local   all       md5_user                  md5
        host    all       md5_user    127.0.0.1/32  md5
        local   all       scram_user                scram-sha-256
        host    all       scram_user  127.0.0.1/32  scram-sha-256
        local   all       password_user                password
        host    all       password_user 127.0.0.1/32  password

        """;

    private async Task StartOnAFreePortAsync(CancellationToken cancellationToken)
    {
        // A free port can be taken by someone else between finding it and binding it: try another.
        for (var attempt = 1; ; attempt++)
        {
            Port = FindFreePort();
            await WriteSettingsAsync(cancellationToken);
            try
            {
                await StartAsync(cancellationToken);
                return;
            }
            catch (InvalidOperationException) when (attempt < PortAttempts && LogTail().Contains("could not bind", StringComparison.Ordinal))
            {
                continue;
            }
        }
    }

    private async Task WriteSettingsAsync(CancellationToken cancellationToken)
    {
        string[] lines =
        [
            $"listen_addresses = '{Host}'",
            $"port = {Port.ToString(CultureInfo.InvariantCulture)}",
            $"unix_socket_directories = '{_rootDirectory}'",
            "max_connections = 300",
            "shared_buffers = 64MB",
            // Throwaway data: durability only costs time.
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "log_min_messages = warning",
            "log_line_prefix = '%m [%p] %u@%d '",
            .. _options.Settings.Select(setting => setting.Replace("{root}", _rootDirectory, StringComparison.Ordinal)),
            string.Empty,
        ];
        var settings = string.Join('\n', lines);
        await File.WriteAllTextAsync(SettingsFile, settings, cancellationToken);
        await PostgresInstallation.GiveToServerUserAsync(_rootDirectory, cancellationToken);
    }

    private async Task CreateRolesAndDatabaseAsync(CancellationToken cancellationToken)
    {
        HasHll = File.Exists(Path.Combine(await ShareDirectoryAsync(cancellationToken), "extension", "hll.control"));

        // password_encryption decides the verifier stored: md5_user must really have an md5 one.
        var script = $"""
            SET password_encryption = 'md5';
            CREATE ROLE {Md5User} LOGIN PASSWORD '{Md5Password}';
            SET password_encryption = 'scram-sha-256';
            CREATE ROLE {ScramUser} LOGIN PASSWORD '{ScramPassword}';
            CREATE ROLE {CleartextUser} LOGIN PASSWORD '{CleartextPassword}';
            CREATE ROLE {TrustUser} LOGIN;
            CREATE DATABASE {Database} OWNER {TrustUser};
            GRANT ALL ON DATABASE {Database} TO {Md5User}, {ScramUser}, {CleartextUser};
            \connect {Database}
            GRANT ALL ON SCHEMA public TO {Md5User}, {ScramUser}, {CleartextUser};
            {(HasHll ? "CREATE EXTENSION hll;" : string.Empty)}
            {_options.SetupSql}
            """;
        var result = await Psql.RunAsync(
            PsqlTarget(Superuser, database: "postgres"), script, cancellationToken: cancellationToken);
        if (!result.Succeeded)
        {
            throw Failure("Creating the test roles and database failed", result);
        }
    }

    private async Task<string> ShareDirectoryAsync(CancellationToken cancellationToken)
    {
        var result = await ProcessRunner.RunAsync(
            Path.Combine(_binDirectory, "pg_config"), ["--sharedir"], CommandDeadline, cancellationToken: cancellationToken);
        if (!result.Succeeded)
        {
            throw Failure("pg_config --sharedir failed", result);
        }

        return result.StandardOutput.Trim();
    }

    private Task<ProcessResult> PgCtlAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken) =>
        _options.NetworkNamespace is { } ns
            // The postmaster is started inside the namespace (root only), then runs as the server's user.
            ? ProcessRunner.RunAsync(
                "ip",
                ["netns", "exec", ns, "runuser", "-u", PostgresInstallation.ServerSystemUser, "--", Path.Combine(_binDirectory, "pg_ctl"), "-D", DataDirectory, .. arguments],
                CommandDeadline,
                workingDirectory: _rootDirectory,
                cancellationToken: cancellationToken)
            : PostgresInstallation.RunServerProgramAsync(
            Path.Combine(_binDirectory, "pg_ctl"),
            ["-D", DataDirectory, .. arguments],
            _rootDirectory,
            CommandDeadline,
            cancellationToken);

    private static int FindFreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private InvalidOperationException Failure(string what, ProcessResult result) =>
        new($"""
            {what} (PostgreSQL from {_binDirectory}, files in {_rootDirectory}).
            {PostgresInstallation.InstallHint}
            {result}
            --- server log ({LogFile}), last lines ---
            {LogTail()}
            """);

    private void DeleteRootDirectory()
    {
        try
        {
            Directory.Delete(_rootDirectory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Already gone.
        }
    }

    /// <summary>The superuser's query result as bare text (psql -At), for fixtures that read catalogs.</summary>
    public async Task<string> QueryAsSuperuserAsync(string sql, CancellationToken cancellationToken = default)
    {
        var result = await Psql.RunAsync(
            PsqlTarget(Superuser), sql + "\n", new PsqlOptions { Arguments = ["-A", "-t"] }, cancellationToken);
        if (!result.Succeeded)
        {
            throw Failure($"Query failed: {sql}", result);
        }

        return result.StandardOutput.Trim();
    }

    private static string Seconds(TimeSpan duration) =>
        ((int)duration.TotalSeconds).ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// More for a test server: files written into its directory before it starts (owner-only, given to the server's
/// user), and settings lines added to its configuration, where <c>{root}</c> stands for that directory.
/// </summary>
public sealed record PostgresServerOptions
{
    public IReadOnlyDictionary<string, string> Files { get; init; } = new Dictionary<string, string>();

    public IReadOnlyList<string> Settings { get; init; } = [];

    /// <summary>pg_hba.conf lines after the fixture's own (one role each), for roles that <see cref="SetupSql"/> creates.</summary>
    public IReadOnlyList<string> HostBasedAuthentication { get; init; } = [];

    /// <summary>psql script run by the superuser in <see cref="PostgresServer.Database"/> once the fixture's roles exist.</summary>
    public string SetupSql { get; init; } = string.Empty;

    /// <summary>The address the server listens on (and is reached at) instead of 127.0.0.1: a veth address, say.</summary>
    public string? ListenAddress { get; init; }

    /// <summary>A network namespace (<c>ip netns</c>) to run the server in; needs root.</summary>
    public string? NetworkNamespace { get; init; }
}
