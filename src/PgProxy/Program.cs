using System.CommandLine;
using PgProxy.Host;

// Before any socket exists: run .NET socket completions on the I/O thread instead of hopping to the thread pool.
// Sessions relay on PgProxy's own event loops; this serves the sockets left on .NET's engine (listeners, auth-query,
// and every session under PGPROXY_EVENT_LOOPS=0, where the hop cost about 15% of the transactions per second in
// bench/compare.sh). An explicit DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=0 keeps the hop.
const string InlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
if (Environment.GetEnvironmentVariable(InlineCompletions) is null)
{
    Environment.SetEnvironmentVariable(InlineCompletions, "1");
}

var configOption = new Option<FileInfo>("--config", "-c")
{
    Description = "The configuration file (YAML).",
    DefaultValueFactory = _ => new FileInfo("config.yml"),
};

var root = new RootCommand("PgProxy: a PostgreSQL wire-protocol proxy that relays sessions to PostgreSQL and lets rules and plugins change what passes through.");
root.Options.Add(configOption);
root.SetAction((parseResult, cancellationToken) => Commands.RunAsync(parseResult.GetRequiredValue(configOption), cancellationToken));

var check = new Command("check", "Validate the configuration and load the plugins, print what would run, and exit (non-zero on any problem).");
check.Options.Add(configOption);
check.SetAction(parseResult => Commands.Check(parseResult.GetRequiredValue(configOption)));
root.Subcommands.Add(check);

// PgProxy handles SIGINT/SIGTERM itself, to drain sessions for as long as shutdown-timeout allows.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
