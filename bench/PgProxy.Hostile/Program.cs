using System.Globalization;
using PgProxy.Hostile;

// pgproxy-hostile --port P [--host H] [--user U] [--database D] [--frames N] [--concurrency C] [--seed S]
//                 [--tls] [--startup-timeout SECONDS] [--idle-timeout SECONDS] [--stalls N]
// Prints one line per ending and the totals; exits 1 when a session was not ended as it should have been.
var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (int i = 0; i < args.Length; i++)
{
    if (!args[i].StartsWith("--", StringComparison.Ordinal))
    {
        Console.Error.WriteLine($"unexpected argument {args[i]}");
        return 2;
    }

    string name = args[i][2..];
    options[name] = name == "tls" ? "true" : (i + 1 < args.Length ? args[++i] : "");
}

string Get(string name, string fallback) => options.TryGetValue(name, out string? value) ? value : fallback;
double Seconds(string name, string fallback) => double.Parse(Get(name, fallback), CultureInfo.InvariantCulture);
if (!options.ContainsKey("port"))
{
    Console.Error.WriteLine("usage: pgproxy-hostile --port P [--frames N] [--concurrency C] [--seed S] [--tls] ...");
    return 2;
}

var settings = new HostileSettings
{
    Host = Get("host", "127.0.0.1"),
    Port = int.Parse(Get("port", "0"), CultureInfo.InvariantCulture),
    User = Get("user", "hostile"),
    Database = Get("database", "hostile"),
    Frames = long.Parse(Get("frames", "1000000"), CultureInfo.InvariantCulture),
    Concurrency = int.Parse(Get("concurrency", "32"), CultureInfo.InvariantCulture),
    Seed = int.Parse(Get("seed", "1"), CultureInfo.InvariantCulture),
    Tls = options.ContainsKey("tls"),
    StartupTimeout = TimeSpan.FromSeconds(Seconds("startup-timeout", "2")),
    IdleTimeout = TimeSpan.FromSeconds(Seconds("idle-timeout", "3")),
    Stalls = int.Parse(Get("stalls", "4"), CultureInfo.InvariantCulture),
};
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
var started = DateTime.UtcNow;
HostileReport report = await new HostileRun(settings).RunAsync(progress: Console.Out, stop.Token);
Console.WriteLine(report.Describe(DateTime.UtcNow - started));
return report.Failures == 0 ? 0 : 1;
