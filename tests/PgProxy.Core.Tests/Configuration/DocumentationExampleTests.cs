using System.Text.RegularExpressions;
using PgProxy.Core.Configuration;
using PgProxy.TestSupport;

namespace PgProxy.Core.Tests.Configuration;

/// <summary>The whole-file examples users copy from the docs must load as they are.</summary>
public partial class DocumentationExampleTests
{
    public static TheoryData<string, int> WholeFileExamples()
    {
        var data = new TheoryData<string, int>();
        foreach (string document in new[] { "README.md", "docs/configuration.md", "docs/plugins/tableau-hll.md", "docs/rules.md", "docs/pooling.md" })
        {
            string text = File.ReadAllText(Path.Combine(RepositoryRoot.Path, document));
            int index = 0;
            foreach (Match block in YamlBlock().Matches(text))
            {
                index++;
                if (block.Groups["body"].Value.Contains("instances:", StringComparison.Ordinal) && !block.Groups["errors"].Success)
                {
                    data.Add(document, index);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(WholeFileExamples))]
    public void Example_loads_without_errors(string document, int blockNumber)
    {
        string text = File.ReadAllText(Path.Combine(RepositoryRoot.Path, document));
        string yaml = YamlBlock().Matches(text)[blockNumber - 1].Groups["body"].Value;

        ProxyConfig config = ConfigLoader.Parse(yaml, Path.GetTempPath(), $"{document} block {blockNumber}");

        Assert.NotEmpty(config.Instances);
    }

    [Fact]
    public void The_documented_error_example_gives_exactly_the_documented_errors()
    {
        string text = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs/configuration.md"));
        Match example = YamlBlock().Matches(text).Single(m => m.Groups["errors"].Success);

        var exception = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(example.Groups["body"].Value, Path.GetTempPath(), "config.yml"));

        Assert.Equal(example.Groups["errors"].Value.Trim().Split('\n'), exception.Message.Trim().Split('\n'));
    }

    [Fact]
    public void The_documented_original_configuration_is_the_file_shipped_with_the_plugin()
    {
        string text = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs/plugins/tableau-hll.md"));
        string documented = YamlBlock().Matches(text)[0].Groups["body"].Value;

        Assert.Equal(File.ReadAllText(Path.Combine(RepositoryRoot.Path, "plugins/TableauHll/config.yml")), documented);
    }

    [Fact]
    public void The_documents_hold_whole_file_examples() => Assert.True(WholeFileExamples().Count >= 3);

    [GeneratedRegex("```yaml\\n(?<body>.*?)```(\\s*is rejected with:\\s*```\\n(?<errors>.*?)```)?", RegexOptions.Singleline)]
    private static partial Regex YamlBlock();
}
