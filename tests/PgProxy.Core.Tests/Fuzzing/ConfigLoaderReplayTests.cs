using System.Text;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tests.Fuzzing;

/// <summary>
/// The YAML loader's boundary, replayed in CI as the fuzz harness's <c>config</c> target runs it: the documented example
/// configurations, the seed corpus under fuzz/corpus/config, and a fixed number of byte and line mutations of them.
/// Any text is a configuration or a <see cref="ConfigException"/> listing its errors; nothing else escapes.
/// </summary>
public sealed class ConfigLoaderReplayTests
{
    private const int Mutations = 5_000;

    [Fact]
    public void A_brace_where_a_colon_belongs_is_a_ConfigException_with_a_line()
    {
        // Found by the replay below: YamlDotNet threw ArgumentException, which reached the user unhandled.
        string text = File.ReadAllText(Path.Combine(PgProxy.TestSupport.RepositoryRoot.Path, "fuzz", "corpus", "config", "regression-argument-exception.yml"));

        ConfigException refused = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(text, "/etc/pgproxy", "config.yml"));

        Assert.Contains("invalid YAML", Assert.Single(refused.Errors).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Any_text_is_a_configuration_or_a_ConfigException()
    {
        List<string> seeds = [.. Seeds()];
        Assert.NotEmpty(seeds);
        var random = new Random(20261203);
        foreach (string text in seeds.Concat(Enumerable.Range(0, Mutations).Select(_ => Mutate(seeds, random))))
        {
            try
            {
                _ = ConfigLoader.Parse(text, "/etc/pgproxy", "config.yml");
            }
            catch (ConfigException)
            {
                // Its documented refusal.
            }
            catch (Exception e)
            {
                Assert.Fail($"ConfigLoader.Parse threw {e.GetType().Name} on:\n{text}\n{e}");
            }
        }
    }

    private static IEnumerable<string> Seeds()
    {
        string root = PgProxy.TestSupport.RepositoryRoot.Path;
        string corpus = Path.Combine(root, "fuzz", "corpus", "config");
        if (Directory.Exists(corpus))
        {
            foreach (string file in Directory.GetFiles(corpus).Order(StringComparer.Ordinal))
            {
                yield return File.ReadAllText(file);
            }
        }

        // Every ```yaml block of the configuration reference that holds a whole file.
        string reference = File.ReadAllText(Path.Combine(root, "docs", "configuration.md"));
        foreach (string block in reference.Split("```yaml").Skip(1).Select(b => b[..b.IndexOf("```", StringComparison.Ordinal)]))
        {
            if (block.Contains("instances:", StringComparison.Ordinal))
            {
                yield return block;
            }
        }
    }

    private static string Mutate(List<string> seeds, Random random)
    {
        string text = seeds[random.Next(seeds.Count)];
        string[] lines = text.Split('\n');
        switch (random.Next(6))
        {
            case 0 when lines.Length > 1:
                return string.Join('\n', lines.Where((_, i) => i != random.Next(lines.Length)));
            case 1 when lines.Length > 1:
                int at = random.Next(lines.Length);
                return string.Join('\n', lines.Take(at + 1).Append(lines[random.Next(lines.Length)]).Concat(lines.Skip(at + 1)));
            case 2 when text.Length > 0:
                return text[..random.Next(text.Length)];
            case 3:
                char[] chars = text.ToCharArray();
                for (int n = 0; n < 1 + random.Next(4) && chars.Length > 0; n++)
                {
                    chars[random.Next(chars.Length)] = "{}[]:-,&*!|>'\"#%@`\t \n0~"[random.Next(23)];
                }

                return new string(chars);
            case 4:
                byte[] bytes = Encoding.UTF8.GetBytes(text);
                if (bytes.Length > 0)
                {
                    bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                }

                return Encoding.UTF8.GetString(bytes);
            default:
                return text.Replace(": ", random.Next(2) == 0 ? ": [" : ": {", StringComparison.Ordinal);
        }
    }
}
