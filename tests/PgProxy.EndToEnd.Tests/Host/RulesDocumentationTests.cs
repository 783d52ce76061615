using System.Text;
using System.Text.RegularExpressions;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.TestSupport;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>The commands docs/rules.md shows, run as shown: each prints exactly the output the page gives.</summary>
public sealed partial class RulesDocumentationTests
{
    private static readonly string Page = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs", "rules.md"));

    [Fact]
    public async Task The_test_rules_example_prints_the_documented_output()
    {
        using ConfigDirectory directory = ConfigDirectory.Create("");
        File.WriteAllText(Path.Combine(directory.Path, "rules.yml"), Block("yaml", "# rules.yml\n"));
        File.WriteAllText(Path.Combine(directory.Path, "queries.sql"), Block("sql", "-- queries.sql\n"));

        (ProcessResult result, string expected) = await RunDocumentedAsync("$ pgproxy test-rules ", directory.Path);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(expected, result.StandardOutput);
    }

    [Fact]
    public async Task The_ci_commands_write_a_golden_file_and_check_it()
    {
        using ConfigDirectory directory = ConfigDirectory.Create("");
        File.WriteAllText(Path.Combine(directory.Path, "rules.yml"), Block("yaml", "# rules.yml\n"));
        File.WriteAllText(Path.Combine(directory.Path, "queries.sql"), Block("sql", "-- queries.sql\n"));
        string[] commands = Block("", "pgproxy test-rules ").TrimEnd('\n').Split('\n');

        string[] write = Arguments(commands[0][..commands[0].IndexOf(" > ", StringComparison.Ordinal)]);
        ProcessResult written = await ProcessRunner.RunAsync("dotnet", [ProxyProcess.AssemblyPath, .. write[1..]], TimeSpan.FromSeconds(60), workingDirectory: directory.Path);
        File.WriteAllText(Path.Combine(directory.Path, "expected.txt"), written.StandardOutput);
        ProcessResult check = await ProcessRunner.RunAsync("dotnet", [ProxyProcess.AssemblyPath, .. Arguments(commands[1])[1..]], TimeSpan.FromSeconds(60), workingDirectory: directory.Path);
        File.AppendAllText(Path.Combine(directory.Path, "rules.yml"), "      - {name: tag-all, match: {}, tag: all}\n");
        ProcessResult changed = await ProcessRunner.RunAsync("dotnet", [ProxyProcess.AssemblyPath, .. Arguments(commands[1])[1..]], TimeSpan.FromSeconds(60), workingDirectory: directory.Path);

        Assert.True(check.Succeeded, check.ToString());
        Assert.Equal(1, changed.ExitCode);
        Assert.Contains("+  rule tag-all (enforce): tag", changed.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_fingerprint_example_prints_the_documented_output()
    {
        (ProcessResult result, string expected) = await RunDocumentedAsync("$ pgproxy fingerprint ", Path.GetTempPath());

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(expected, result.StandardOutput);
    }

    /// <summary>Runs the command of the block that starts with <paramref name="prompt"/>; the rest of the block is its output.</summary>
    private static async Task<(ProcessResult Result, string Expected)> RunDocumentedAsync(string prompt, string workingDirectory)
    {
        string block = Block("", prompt);
        int endOfCommand = block.IndexOf('\n', StringComparison.Ordinal);
        string[] arguments = Arguments(block[2..endOfCommand]);
        Assert.Equal("pgproxy", arguments[0]);
        ProcessResult result = await ProcessRunner.RunAsync("dotnet", [ProxyProcess.AssemblyPath, .. arguments[1..]], TimeSpan.FromSeconds(60), workingDirectory: workingDirectory);
        return (result, block[(endOfCommand + 1)..]);
    }

    /// <summary>The body of the page's one code block of language <paramref name="language"/> whose text starts with <paramref name="start"/>.</summary>
    private static string Block(string language, string start) =>
        CodeBlock().Matches(Page)
            .Where(match => match.Groups["language"].Value == language)
            .Select(match => match.Groups["body"].Value)
            .Single(body => body.StartsWith(start, StringComparison.Ordinal));

    /// <summary>A shell command line split as sh would: single and double quotes group, and are removed.</summary>
    private static string[] Arguments(string commandLine)
    {
        var arguments = new List<string>();
        var current = new StringBuilder();
        bool inArgument = false;
        char quote = '\0';
        foreach (char c in commandLine)
        {
            if (quote != '\0')
            {
                if (c == quote)
                {
                    quote = '\0';
                }
                else
                {
                    current.Append(c);
                }
            }
            else if (c is '\'' or '"')
            {
                quote = c;
                inArgument = true;
            }
            else if (c == ' ')
            {
                if (inArgument)
                {
                    arguments.Add(current.ToString());
                    current.Clear();
                    inArgument = false;
                }
            }
            else
            {
                current.Append(c);
                inArgument = true;
            }
        }

        if (inArgument)
        {
            arguments.Add(current.ToString());
        }

        return [.. arguments];
    }

    [GeneratedRegex("```(?<language>[a-z]*)\\n(?<body>.*?)```", RegexOptions.Singleline)]
    private static partial Regex CodeBlock();
}
