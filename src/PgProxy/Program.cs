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

var takeoverOption = new Option<bool>("--takeover")
{
    Description = "Take the listening sockets over from the PgProxy running this configuration (an upgrade or restart without refusing a connection); it then drains and exits.",
};

var root = new RootCommand("PgProxy: a PostgreSQL wire-protocol proxy that relays sessions to PostgreSQL and lets rules and plugins change what passes through.");
root.Options.Add(configOption);
root.Options.Add(takeoverOption);
root.SetAction((parseResult, cancellationToken) => Commands.RunAsync(parseResult.GetRequiredValue(configOption), parseResult.GetValue(takeoverOption), cancellationToken));

var check = new Command("check", "Validate the configuration and load the plugins, print what would run, and exit (non-zero on any problem).");
check.Options.Add(configOption);
check.SetAction(parseResult => Commands.Check(parseResult.GetRequiredValue(configOption)));
root.Subcommands.Add(check);

var instanceOption = new Option<string>("--instance") { Description = "The instance whose rules apply (default: the first)." };
var userOption = new Option<string>("--user") { Description = "The session's user, for rules that match on it." };
var databaseOption = new Option<string>("--database") { Description = "The session's database." };
var applicationNameOption = new Option<string>("--application-name") { Description = "The session's application_name." };
var clientOption = new Option<string>("--client") { Description = "The client's IP address." };
var protocolOption = new Option<string>("--protocol") { Description = "The message the SQL comes in: simple (Query) or extended (Parse).", DefaultValueFactory = _ => "simple" };
protocolOption.AcceptOnlyFromAmong("simple", "extended");
var formatOption = new Option<string>("--format") { Description = "text, or json for programs.", DefaultValueFactory = _ => "text" };
formatOption.AcceptOnlyFromAmong("text", "json");
var expectOption = new Option<FileInfo>("--expect") { Description = "A golden file: compare the output with it, and exit 1 on a difference." };
var sqlFileArgument = new Argument<string>("SQL-FILE")
{
    Description = "The SQL to test, one or more statements; - (the default) reads standard input.",
    Arity = ArgumentArity.ZeroOrOne,
    DefaultValueFactory = _ => "-",
};
var testRules = new Command("test-rules", "Show what the rules of an instance do to each statement of a SQL file, without a server; with --expect, compare with a golden file.");
testRules.Options.Add(configOption);
testRules.Options.Add(instanceOption);
testRules.Options.Add(userOption);
testRules.Options.Add(databaseOption);
testRules.Options.Add(applicationNameOption);
testRules.Options.Add(clientOption);
testRules.Options.Add(protocolOption);
testRules.Options.Add(formatOption);
testRules.Options.Add(expectOption);
testRules.Arguments.Add(sqlFileArgument);
testRules.SetAction(parseResult => RuleCommands.TestRules(
    new TestRulesRequest(parseResult.GetRequiredValue(configOption), parseResult.GetRequiredValue(sqlFileArgument))
    {
        Instance = parseResult.GetValue(instanceOption),
        User = parseResult.GetValue(userOption),
        Database = parseResult.GetValue(databaseOption),
        ApplicationName = parseResult.GetValue(applicationNameOption),
        Client = parseResult.GetValue(clientOption),
        Protocol = parseResult.GetRequiredValue(protocolOption) == "extended" ? PgProxy.Core.Configuration.QueryProtocol.Extended : PgProxy.Core.Configuration.QueryProtocol.Simple,
        Json = parseResult.GetRequiredValue(formatOption) == "json",
        Expect = parseResult.GetValue(expectOption),
    },
    Console.In));
root.Subcommands.Add(testRules);

var sqlArgument = new Argument<string>("SQL") { Description = "The SQL, one or more statements; - reads standard input." };
var fingerprint = new Command("fingerprint", "Print the libpg_query fingerprint and the normalized text of each statement, for fingerprint rules.");
fingerprint.Arguments.Add(sqlArgument);
fingerprint.SetAction(parseResult => RuleCommands.Fingerprint(parseResult.GetRequiredValue(sqlArgument), Console.In));
root.Subcommands.Add(fingerprint);

// Hidden: what the main process runs in a child to compile a source plugin, so that Roslyn never stays in it.
var nameOption = new Option<string>("--name") { Required = true };
var describedAsOption = new Option<string>("--described-as") { Required = true };
var outputOption = new Option<string>("--output") { Required = true };
var filesArgument = new Argument<string[]>("FILES") { Arity = ArgumentArity.OneOrMore };
var compilePlugin = new Command(PluginCompileCommand.Name, "Compile a source plugin (used by pgproxy itself).") { Hidden = true };
compilePlugin.Options.Add(nameOption);
compilePlugin.Options.Add(describedAsOption);
compilePlugin.Options.Add(outputOption);
compilePlugin.Arguments.Add(filesArgument);
compilePlugin.SetAction(parseResult => PluginCompileCommand.Run(
    parseResult.GetRequiredValue(nameOption), parseResult.GetRequiredValue(describedAsOption), parseResult.GetRequiredValue(outputOption), parseResult.GetRequiredValue(filesArgument)));
root.Subcommands.Add(compilePlugin);

// Every other command compiles source plugins in such a child.
if (args.Length == 0 || args[0] != PluginCompileCommand.Name)
{
    PluginCompileCommand.Install();
}

// PgProxy handles SIGINT/SIGTERM itself, to drain sessions for as long as shutdown-timeout allows.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
