using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace PgProxy.EndToEnd.Tests.Metrics;

/// <summary>One sample line of a scrape: a series name, its labels and its value.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public string? Label(string name) => Labels.GetValueOrDefault(name);

    public bool Has(params (string Name, string Value)[] labels) => labels.All(l => Label(l.Name) == l.Value);

    public override string ToString() =>
        $"{Name}{{{string.Join(",", Labels.Select(l => $"{l.Key}=\"{l.Value}\""))}}} {Value.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>
/// A scrape in the Prometheus text format (version 0.0.4, what a plain <c>GET /metrics</c> returns), parsed strictly:
/// every line must be a comment, a HELP or TYPE line, or a sample, names and label names must be valid, a family's
/// TYPE comes before its samples and once, and a family's lines are not split up. Anything else is a
/// <see cref="FormatException"/> naming the line.
/// </summary>
public sealed partial class PrometheusScrape
{
    private static readonly string[] HistogramSuffixes = ["_bucket", "_sum", "_count"];

    private PrometheusScrape(IReadOnlyList<PrometheusSample> samples, IReadOnlyDictionary<string, string> types)
    {
        Samples = samples;
        Types = types;
    }

    public IReadOnlyList<PrometheusSample> Samples { get; }

    /// <summary>The TYPE of each family: counter, gauge, histogram, summary or untyped.</summary>
    public IReadOnlyDictionary<string, string> Types { get; }

    public static PrometheusScrape Parse(string text)
    {
        var samples = new List<PrometheusSample>();
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        var finished = new HashSet<string>(StringComparer.Ordinal);
        string? currentFamily = null;
        string[] lines = text.Split('\n');
        for (int index = 0; index < lines.Length; index++)
        {
            string line = lines[index];
            int number = index + 1;
            if (line.Length == 0 || (line.StartsWith('#') && !line.StartsWith("# HELP ", StringComparison.Ordinal) && !line.StartsWith("# TYPE ", StringComparison.Ordinal)))
            {
                continue;
            }

            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                string[] parts = line["# TYPE ".Length..].Split(' ');
                if (parts.Length != 2 || !WholeMetricName().IsMatch(parts[0]) || parts[1] is not ("counter" or "gauge" or "histogram" or "summary" or "untyped"))
                {
                    throw new FormatException($"line {number}: malformed TYPE line: {line}");
                }

                if (!types.TryAdd(parts[0], parts[1]) || finished.Contains(parts[0]) || samples.Exists(s => FamilyOf(s.Name, types) == parts[0]))
                {
                    throw new FormatException($"line {number}: TYPE of {parts[0]} repeated or after its samples");
                }

                Switch(parts[0], number);
                continue;
            }

            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                string name = line["# HELP ".Length..].Split(' ', 2)[0];
                if (!WholeMetricName().IsMatch(name))
                {
                    throw new FormatException($"line {number}: malformed HELP line: {line}");
                }

                Switch(name, number);
                continue;
            }

            PrometheusSample sample = ParseSample(line, number);
            Switch(FamilyOf(sample.Name, types), number);
            samples.Add(sample);
        }

        return new PrometheusScrape(samples, types);

        // A family's lines form one group: once another family starts, the earlier one may not come back.
        void Switch(string family, int number)
        {
            if (family == currentFamily)
            {
                return;
            }

            if (finished.Contains(family))
            {
                throw new FormatException($"line {number}: the lines of {family} are split up by another family");
            }

            if (currentFamily is not null)
            {
                finished.Add(currentFamily);
            }

            currentFamily = family;
        }
    }

    /// <summary>Every sample named <paramref name="name"/> that carries all of <paramref name="labels"/>.</summary>
    public IReadOnlyList<PrometheusSample> Series(string name, params (string Name, string Value)[] labels) =>
        [.. Samples.Where(s => s.Name == name && s.Has(labels))];

    /// <summary>The value of the one sample named <paramref name="name"/> with <paramref name="labels"/>; 0 when there is none (a counter never added to).</summary>
    public double Value(string name, params (string Name, string Value)[] labels)
    {
        IReadOnlyList<PrometheusSample> series = Series(name, labels);
        return series.Count switch
        {
            0 => 0,
            1 => series[0].Value,
            _ => throw new InvalidOperationException($"{series.Count} series {name} match: {string.Join("; ", series)}"),
        };
    }

    public bool Contains(string name, params (string Name, string Value)[] labels) => Series(name, labels).Count > 0;

    /// <summary>
    /// Every problem of the histograms: per series, buckets with increasing bounds whose counts never decrease, a
    /// last bucket of +Inf equal to _count, and a _sum. Empty when all are consistent.
    /// </summary>
    public IReadOnlyList<string> HistogramProblems()
    {
        var problems = new List<string>();
        foreach (string family in Types.Where(t => t.Value == "histogram").Select(t => t.Key))
        {
            var groups = Series(family + "_bucket").GroupBy(s => Key(s.Labels.Where(l => l.Key != "le")));
            foreach (var group in groups)
            {
                var buckets = group.Select(s => (Bound: ParseValue(s.Labels["le"]), Count: s.Value)).ToList();
                for (int i = 1; i < buckets.Count; i++)
                {
                    if (buckets[i].Bound <= buckets[i - 1].Bound)
                    {
                        problems.Add($"{family}{{{group.Key}}}: bucket le={buckets[i].Bound} after le={buckets[i - 1].Bound}");
                    }

                    if (buckets[i].Count < buckets[i - 1].Count)
                    {
                        problems.Add($"{family}{{{group.Key}}}: bucket le={buckets[i].Bound} counts {buckets[i].Count}, less than le={buckets[i - 1].Bound} with {buckets[i - 1].Count}");
                    }
                }

                double? count = Samples.SingleOrDefault(s => s.Name == family + "_count" && Key(s.Labels) == group.Key)?.Value;
                bool hasSum = Samples.Any(s => s.Name == family + "_sum" && Key(s.Labels) == group.Key);
                if (buckets.Count == 0 || !double.IsPositiveInfinity(buckets[^1].Bound))
                {
                    problems.Add($"{family}{{{group.Key}}}: the last bucket is not le=+Inf");
                }
                else if (count != buckets[^1].Count)
                {
                    problems.Add($"{family}{{{group.Key}}}: le=+Inf counts {buckets[^1].Count}, _count is {count?.ToString(CultureInfo.InvariantCulture) ?? "missing"}");
                }

                if (!hasSum)
                {
                    problems.Add($"{family}{{{group.Key}}}: no _sum");
                }
            }
        }

        return problems;
    }

    private static string Key(IEnumerable<KeyValuePair<string, string>> labels) =>
        string.Join(",", labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}"));

    /// <summary>The family a sample belongs to: a histogram's _bucket, _sum and _count lines are its family's.</summary>
    private static string FamilyOf(string name, Dictionary<string, string> types)
    {
        foreach (string suffix in HistogramSuffixes)
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal) && types.TryGetValue(name[..^suffix.Length], out string? type) && type is "histogram" or "summary")
            {
                return name[..^suffix.Length];
            }
        }

        return name;
    }

    private static PrometheusSample ParseSample(string line, int number)
    {
        Match name = MetricName().Match(line);
        if (!name.Success || name.Index != 0)
        {
            throw new FormatException($"line {number}: not a sample: {line}");
        }

        int position = name.Length;
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (position < line.Length && line[position] == '{')
        {
            position++;
            while (line[position] != '}')
            {
                Match label = LabelName().Match(line, position);
                if (!label.Success || label.Index != position || line[position + label.Length] != '=' || line[position + label.Length + 1] != '"')
                {
                    throw new FormatException($"line {number}: malformed label at column {position + 1}: {line}");
                }

                position += label.Length + 2;
                var value = new StringBuilder();
                while (line[position] != '"')
                {
                    if (line[position] == '\\')
                    {
                        position++;
                        value.Append(line[position] switch
                        {
                            'n' => '\n',
                            '\\' => '\\',
                            '"' => '"',
                            _ => throw new FormatException($"line {number}: bad escape \\{line[position]} in a label value"),
                        });
                    }
                    else
                    {
                        value.Append(line[position]);
                    }

                    position++;
                }

                if (!labels.TryAdd(label.Value, value.ToString()))
                {
                    throw new FormatException($"line {number}: label {label.Value} twice");
                }

                position++;
                if (line[position] == ',')
                {
                    position++;
                }
                else if (line[position] != '}')
                {
                    throw new FormatException($"line {number}: expected ',' or '}}' at column {position + 1}: {line}");
                }
            }

            position++;
        }

        // The value, then an optional timestamp (milliseconds), separated by single spaces or tabs.
        string[] rest = line[position..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (rest.Length is < 1 or > 2 || (rest.Length == 2 && !long.TryParse(rest[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)))
        {
            throw new FormatException($"line {number}: expected a value and an optional timestamp: {line}");
        }

        return new PrometheusSample(name.Value, labels, ParseValue(rest[0], number));
    }

    private static double ParseValue(string text, int number = 0) => text switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        "NaN" => double.NaN,
        _ => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new FormatException($"line {number}: '{text}' is not a value"),
    };

    [GeneratedRegex("[a-zA-Z_:][a-zA-Z0-9_:]*")]
    private static partial Regex MetricName();

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex WholeMetricName();

    [GeneratedRegex("[a-zA-Z_][a-zA-Z0-9_]*")]
    private static partial Regex LabelName();
}
