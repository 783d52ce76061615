using System.Globalization;
using System.Text;
using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.Protocol.Authentication;

namespace PgProxy.EndToEnd.Tests.Admin;

/// <summary>
/// An admin console for a test: an auth-file in a temporary folder with a SCRAM user and an md5 user (both in
/// admin.users) and a SCRAM user who is not in admin.users, and the ways to reach the console with psql and Npgsql.
/// </summary>
public sealed class ConsoleSetup : IDisposable
{
    public const string User = "ops";
    public const string Password = "ops-secret";
    public const string Md5User = "mdops";
    public const string Md5Password = "md5-secret";

    /// <summary>In the auth-file with a valid verifier, but not in admin.users.</summary>
    public const string Outsider = "intruder";
    public const string OutsiderPassword = "intruder-secret";

    private ConsoleSetup(string directory)
    {
        DirectoryPath = directory;
        byte[] salt = Encoding.ASCII.GetBytes("pgproxy-console!");
        File.WriteAllText(AuthFile, string.Join('\n',
        [
            "# the console's users, as pg_authid would hold them",
            $"\"{User}\" \"{ScramVerifier.FromPassword(Password, salt, 4096)}\"",
            $"\"{Md5User}\" \"{PasswordMessages.Md5Verifier(Md5User, Md5Password)}\"",
            $"\"{Outsider}\" \"{ScramVerifier.FromPassword(OutsiderPassword, salt, 4096)}\"",
            string.Empty,
        ]));
    }

    public string DirectoryPath { get; }

    public string AuthFile => Path.Combine(DirectoryPath, "admin-users.txt");

    public static ConsoleSetup Create() => new(Directory.CreateTempSubdirectory("pgproxy-console-").FullName);

    /// <summary>The admin section: users ops and mdops, the auth-file, and a listener of its own on a free port unless <paramref name="listen"/> is false.</summary>
    public AdminConfig Admin(bool listen = true, ListenTlsConfig? tls = null) => new()
    {
        Listen = listen ? new EndpointConfig("admin", "127.0.0.1", 0) : null,
        Users = [User, Md5User],
        AuthFile = AuthFile,
        Tls = tls ?? ListenTlsConfig.Disabled,
    };

    /// <summary>One instance "proxy" relaying to <paramref name="upstream"/>, with the console.</summary>
    public ProxyConfig Config(PostgresServer upstream, bool listen = true) =>
        TestConfigs.Relay(upstream.Host, upstream.Port) with { Admin = Admin(listen) };

    /// <summary>One instance "proxy" whose upstream refuses every connection: whatever reaches it fails with 08001.</summary>
    public ProxyConfig ConfigWithoutUpstream() =>
        TestConfigs.Relay("127.0.0.1", ClosedPort()) with { Admin = Admin() };

    /// <summary>The console's own listener (<paramref name="dedicated"/>) or the instance's port, database pgproxy.</summary>
    public static PsqlTarget Target(ProxyHarness proxy, bool dedicated = true, string user = User, string? password = Password) =>
        new(proxy.Host, dedicated ? ConsolePort(proxy) : proxy.Port, user, AdminConfig.Database, password);

    public static int ConsolePort(ProxyHarness proxy) => proxy.Server.GetConsoleEndpoints()[0].Port;

    /// <summary>
    /// An Npgsql connection string to the console with <c>Server Compatibility Mode=NoTypeLoading</c>, written as users
    /// write it (the builder's property for it is obsolete): Npgsql then asks the server for no types.
    /// </summary>
    public static string ConnectionString(ProxyHarness proxy, bool dedicated = true) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = proxy.Host,
            Port = dedicated ? ConsolePort(proxy) : proxy.Port,
            Username = User,
            Password = Password,
            Database = AdminConfig.Database,
            Pooling = false,
            Timeout = 15,
        }.ConnectionString + ";Server Compatibility Mode=NoTypeLoading";

    public void Dispose()
    {
        try
        {
            Directory.Delete(DirectoryPath, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory left behind is not a test failure.
        }
    }

    private static int ClosedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>One console command run by psql with <c>--csv</c>: the header, the rows, and what psql said.</summary>
public sealed record ConsoleOutput(ProcessResult Process, IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<string>> Rows)
{
    /// <summary>The value of <paramref name="column"/> in <paramref name="row"/>.</summary>
    public string Value(IReadOnlyList<string> row, string column)
    {
        ArgumentNullException.ThrowIfNull(row);
        int index = Columns.ToList().IndexOf(column);
        Assert.True(index >= 0, $"no column {column} in {string.Join(",", Columns)}");
        return row[index];
    }

    /// <summary>The rows whose <paramref name="column"/> is <paramref name="value"/>.</summary>
    public IReadOnlyList<IReadOnlyList<string>> Where(string column, string value) => [.. Rows.Where(row => Value(row, column) == value)];
}

/// <summary>psql against the console.</summary>
public static class ConsolePsql
{
    /// <summary>Runs <paramref name="command"/> with <c>psql --csv -c</c>, stopping at an error, and parses what it printed.</summary>
    public static async Task<ConsoleOutput> RunAsync(PsqlTarget target, string command)
    {
        ProcessResult result = await Psql.RunAsync(target, string.Empty, new PsqlOptions { Arguments = ["--csv", "-c", command] });
        List<List<string>> records = Csv(result.StandardOutput);
        return records.Count == 0
            ? new ConsoleOutput(result, [], [])
            : new ConsoleOutput(result, records[0], [.. records.Skip(1)]);
    }

    /// <summary>As <see cref="RunAsync"/>, failing the test when psql does.</summary>
    public static async Task<ConsoleOutput> QueryAsync(PsqlTarget target, string command)
    {
        ConsoleOutput output = await RunAsync(target, command);
        Assert.True(output.Process.Succeeded, output.Process.ToString());
        return output;
    }

    /// <summary>psql's CSV (RFC 4180): fields quoted when they hold a comma, a quote or a line break, quotes doubled.</summary>
    private static List<List<string>> Csv(string text)
    {
        var records = new List<List<string>>();
        var record = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        bool any = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    field.Append(c);
                }

                continue;
            }

            switch (c)
            {
                case '"':
                    quoted = true;
                    any = true;
                    break;
                case ',':
                    record.Add(field.ToString());
                    field.Clear();
                    any = true;
                    break;
                case '\n':
                    if (any || field.Length > 0)
                    {
                        record.Add(field.ToString());
                        records.Add(record);
                    }

                    record = [];
                    field.Clear();
                    any = false;
                    break;
                case '\r':
                    break;
                default:
                    field.Append(c);
                    any = true;
                    break;
            }
        }

        if (any || field.Length > 0)
        {
            record.Add(field.ToString());
            records.Add(record);
        }

        return records;
    }

    public static long Number(string value) => long.Parse(value, CultureInfo.InvariantCulture);
}
