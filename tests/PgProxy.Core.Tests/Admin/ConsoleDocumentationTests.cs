using System.Text.RegularExpressions;
using PgProxy.Core.Admin;
using PgProxy.TestSupport;

namespace PgProxy.Core.Tests.Admin;

/// <summary>docs/operations.md documents every console command, and the columns of each in the order the console returns them.</summary>
public sealed partial class ConsoleDocumentationTests
{
    private static readonly string Operations = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs", "operations.md"));

    public static TheoryData<string> Commands() => [.. ConsoleCatalog.All.Select(command => command.Syntax)];

    [Theory]
    [MemberData(nameof(Commands))]
    public void Each_command_has_a_section_with_its_columns_in_order_or_its_tag(string syntax)
    {
        ConsoleCommandInfo command = ConsoleCatalog.All.Single(c => c.Syntax == syntax);
        string section = SectionOf(syntax);

        if (command.Columns is { } columns)
        {
            List<(int Number, string Name)> documented = [.. ColumnRow().Matches(section).Select(m => (int.Parse(m.Groups["number"].Value, System.Globalization.CultureInfo.InvariantCulture), m.Groups["name"].Value))];
            Assert.Equal(columns, documented.Select(c => c.Name));
            Assert.Equal(Enumerable.Range(1, columns.Count), documented.Select(c => c.Number));
        }
        else
        {
            Assert.Contains($"`{command.Tag}`", section, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_example_session_shows_the_columns_of_show_sessions_in_order()
    {
        string header = string.Join(" | ", ConsoleCatalog.Of(ConsoleCommandKind.ShowSessions).Columns!);
        string example = Operations[Operations.IndexOf("### Example", StringComparison.Ordinal)..];

        Assert.Contains(header, Regex.Replace(example, " +", " "), StringComparison.Ordinal);
    }

    private static string SectionOf(string syntax)
    {
        string heading = $"#### `{syntax}`\n";
        int start = Operations.IndexOf(heading, StringComparison.Ordinal);
        Assert.True(start >= 0, $"docs/operations.md has no section {heading.Trim()}");
        int end = Operations.IndexOf("\n#", start + heading.Length, StringComparison.Ordinal);
        return Operations[start..(end < 0 ? Operations.Length : end)];
    }

    [GeneratedRegex(@"^\| (?<number>\d+) \| `(?<name>[a-z_0-9]+)` \|", RegexOptions.Multiline)]
    private static partial Regex ColumnRow();
}
