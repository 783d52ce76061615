using System.Text.RegularExpressions;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.TestSupport;

namespace PgProxy.EndToEnd.Tests.Masks;

/// <summary>
/// The recipe "Masking for a role" of docs/rules.md, run as written against a real server: its configuration (with the
/// test server's address), its table, and each psql command it shows, which must print exactly the output shown.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed partial class MasksDocumentationTests(PostgresFixture fixture) : IAsyncLifetime
{
    private static readonly string Page = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs", "rules.md"));

    public Task InitializeAsync() => fixture.Server.QueryAsSuperuserAsync("""
        CREATE SCHEMA IF NOT EXISTS crm;
        DROP TABLE IF EXISTS crm.customers;
        CREATE TABLE crm.customers (id int PRIMARY KEY, email text, card text);
        INSERT INTO crm.customers VALUES (1, 'alice@example.com', '4111111111111234'), (2, 'bob@example.org', '5500000000005678');
        GRANT USAGE ON SCHEMA crm TO PUBLIC;
        GRANT SELECT ON crm.customers TO PUBLIC;
        """);

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Every_command_of_the_masking_recipe_prints_what_the_page_shows()
    {
        string section = Page[Page.IndexOf("### Masking for a role", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("\n### ", 5, StringComparison.Ordinal)];
        string yaml = CodeBlock().Matches(section).Single(block => block.Groups["language"].Value == "yaml").Groups["body"].Value;
        string[] examples = [.. CodeBlock().Matches(section).Where(block => block.Groups["language"].Value == "").Select(block => block.Groups["body"].Value)];
        Assert.Equal(2, examples.Length);

        string configuration = yaml
            .Replace("{name: crm, host: 0.0.0.0, port: 6432}", "{name: crm, host: 127.0.0.1, port: 0}", StringComparison.Ordinal)
            .Replace("{name: postgresql, host: db.internal, port: 5432}", $"{{name: postgresql, host: {fixture.Server.Host}, port: {fixture.Server.Port}}}", StringComparison.Ordinal);
        Assert.NotEqual(yaml, configuration);
        using ConfigDirectory directory = ConfigDirectory.Create(configuration);
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        var analyst = new PsqlTarget("127.0.0.1", proxy.PortOf("crm"), PostgresServer.TrustUser, PostgresServer.Database);
        foreach (string example in examples)
        {
            int endOfCommand = example.IndexOf('\n', StringComparison.Ordinal);
            Match command = PsqlCommand().Match(example[..endOfCommand]);
            Assert.True(command.Success, example);
            string expected = example[(endOfCommand + 1)..];

            ProcessResult result = await Psql.RunAsync(analyst, "", new PsqlOptions { OnErrorStop = false, Arguments = ["-c", command.Groups["sql"].Value] });

            Assert.Equal(expected, expected.StartsWith("ERROR:", StringComparison.Ordinal) ? result.StandardError : result.StandardOutput);
        }
    }

    [GeneratedRegex("```(?<language>[a-z]*)\\n(?<body>.*?)```", RegexOptions.Singleline)]
    private static partial Regex CodeBlock();

    [GeneratedRegex("^\\$ psql -h proxy -p 6432 -U analyst crm -c \"(?<sql>[^\"]+)\"$")]
    private static partial Regex PsqlCommand();
}
