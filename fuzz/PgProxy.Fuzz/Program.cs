using PgProxy.Core.Configuration;
using PgProxy.Protocol.Tests.Fuzzing;
using PgProxy.Sql.Tests.Fuzzing;
using SharpFuzz;

const string ConfigSeed = """
    plugins: [tableau_hll]
    settings: {log-level: info, plugin-timeout: 2s}
    instances:
      - listen: {name: proxy, host: 127.0.0.1, port: 6432, keepalive: {idle: 60s, interval: 10s, count: 6}}
        redirect: {name: db, host: 127.0.0.1, port: 5432, tls: {mode: prefer}}
        limits: {max-message-size: 64MB, client-idle-timeout: 15m, server-login-timeout: 30s}
        intercept:
          commands:
            queries: [{plugin: tableau_hll, function: rewrite_query, on-error: pass}]
    """;

// pgproxy-fuzz TARGET            run TARGET under afl++ (input on stdin, as afl-fuzz gives it)
// pgproxy-fuzz make-corpus DIR   write the seeds of every target to DIR/TARGET/seed-N
if (args.Length == 2 && args[0] == "make-corpus")
{
    foreach (string name in FuzzTargets.All.Keys.Append("config").Append("sql"))
    {
        string directory = Directory.CreateDirectory(Path.Combine(args[1], name)).FullName;
        IReadOnlyList<byte[]> seeds = name switch
        {
            "config" => [System.Text.Encoding.UTF8.GetBytes(ConfigSeed)],
            "sql" => SqlFuzzSeeds.All,
            _ => FuzzSeeds.For(name),
        };
        for (int i = 0; i < seeds.Count; i++)
        {
            File.WriteAllBytes(Path.Combine(directory, $"seed-{i}"), seeds[i]);
        }
    }

    return 0;
}

if (args.Length != 1 || !(FuzzTargets.All.ContainsKey(args[0]) || args[0] is "config" or "sql"))
{
    Console.Error.WriteLine($"usage: pgproxy-fuzz TARGET | make-corpus DIR; targets: {string.Join(", ", FuzzTargets.All.Keys)}, config, sql");
    return 2;
}

Action<byte[]> run = args[0] switch
{
    "config" => Config,
    "sql" => SqlFuzzTarget.Run,
    _ => FuzzTargets.All[args[0]],
};
Fuzzer.OutOfProcess.Run(stream =>
{
    using var buffer = new MemoryStream();
    stream.CopyTo(buffer);
    run(buffer.ToArray());
});
return 0;

// The YAML loader: any text is a configuration or a ConfigException listing its errors, never anything else.
static void Config(byte[] data)
{
    try
    {
        _ = ConfigLoader.Parse(System.Text.Encoding.UTF8.GetString(data), "/etc/pgproxy", "config.yml");
    }
    catch (ConfigException)
    {
        // Its documented refusal.
    }
}
