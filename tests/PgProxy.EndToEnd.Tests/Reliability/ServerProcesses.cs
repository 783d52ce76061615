using System.Globalization;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Reliability;

/// <summary>
/// The processes of a test server, read from /proc: its postmaster, and the backends of its TCP clients. A backend is
/// counted from the moment it is forked, while it still authenticates: PostgreSQL 15's pg_stat_activity lists a
/// backend only once its login is done, so it cannot see the backends of clients that leave during authentication.
/// </summary>
internal static class ServerProcesses
{
    /// <summary>The postmaster's process id: the first line of postmaster.pid.</summary>
    public static int PostmasterId(PostgresServer server) =>
        int.Parse(File.ReadLines(Path.Combine(server.DataDirectory, "postmaster.pid")).First(), CultureInfo.InvariantCulture);

    /// <summary>The postmaster and every process it started (background processes and backends), postmaster first.</summary>
    public static IReadOnlyList<int> All(PostgresServer server)
    {
        int postmaster = PostmasterId(server);
        return [postmaster, .. Children(postmaster, _ => true)];
    }

    /// <summary>Sends <paramref name="signal"/> (STOP, CONT) to <paramref name="processes"/>, in their order.</summary>
    public static async Task SignalAsync(string signal, IEnumerable<int> processes)
    {
        ProcessResult result = await ProcessRunner.RunAsync(
            "kill", ["-s", signal, .. processes.Select(pid => pid.ToString(CultureInfo.InvariantCulture))], TimeSpan.FromSeconds(10));
        // A process that ended since it was listed is not a failure: kill still signals the others.
        if (!result.Succeeded && !result.StandardError.Contains("No such process", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"kill -s {signal} failed: {result}");
        }
    }

    /// <summary>
    /// The postmaster's children that serve a TCP client: their process title (update_process_title, on by default)
    /// reads <c>postgres: USER DATABASE 127.0.0.1(PORT) STATE</c>.
    /// </summary>
    public static IReadOnlyList<int> ClientBackends(PostgresServer server) =>
        Children(PostmasterId(server), title => title.Contains("127.0.0.1(", StringComparison.Ordinal));

    private static List<int> Children(int postmaster, Func<string, bool> titled)
    {
        var backends = new List<int>();
        foreach (string directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            {
                continue;
            }

            try
            {
                string stat = File.ReadAllText(Path.Combine(directory, "stat"));
                // pid (comm) state ppid ...: comm may hold spaces, so the fields are read after its closing parenthesis.
                string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (int.Parse(fields[1], CultureInfo.InvariantCulture) != postmaster)
                {
                    continue;
                }

                string title = File.ReadAllText(Path.Combine(directory, "cmdline"));
                if (titled(title))
                {
                    backends.Add(pid);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The process ended while it was read.
            }
        }

        return backends;
    }
}
