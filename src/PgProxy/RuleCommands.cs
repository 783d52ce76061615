using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Masks;
using PgProxy.Core.Rules;
using PgProxy.Sql;

namespace PgProxy.Host;

/// <summary>What <c>pgproxy test-rules</c> is asked: the configuration, which instance, who sends the SQL, and how to answer.</summary>
internal sealed record TestRulesRequest(FileInfo ConfigFile, string SqlSource)
{
    public string? Instance { get; init; }

    public string? User { get; init; }

    public string? Database { get; init; }

    public string? ApplicationName { get; init; }

    public string? Client { get; init; }

    public QueryProtocol Protocol { get; init; } = QueryProtocol.Simple;

    public bool Json { get; init; }

    public FileInfo? Expect { get; init; }
}

/// <summary>
/// The commands for writing and testing rules without a server: <c>test-rules</c> (what the rules do to each statement
/// of a SQL file) and <c>fingerprint</c> (the value a <c>fingerprint</c> rule matches).
/// </summary>
internal static class RuleCommands
{
    /// <summary>
    /// <c>pgproxy test-rules</c>: splits the SQL into statements with the parser, runs each through the instance's rules
    /// as the proxy would for that session, and prints per statement the rules that matched (both modes), the text after
    /// them and any refusal. With <c>--expect</c>, compares that output with a golden file instead: exit 1 on a difference.
    /// </summary>
    public static int TestRules(TestRulesRequest request, TextReader standardInput)
    {
        if (!Commands.TryLoad(request.ConfigFile, out ProxyConfig? config) || !TryParser())
        {
            return Commands.Failure;
        }

        InstanceConfig? instance = request.Instance is null
            ? config.Instances[0]
            : config.Instances.FirstOrDefault(candidate => candidate.Listen.Name == request.Instance);
        if (instance is null)
        {
            Console.Error.WriteLine($"pgproxy: no instance \"{request.Instance}\" in {request.ConfigFile.FullName}; its instances are {string.Join(", ", config.Instances.Select(i => $"\"{i.Listen.Name}\""))}");
            return Commands.Failure;
        }

        IPAddress? client = null;
        // IPAddress.TryParse reads "10.1.2" as 10.1.0.2: an IPv4 address must have its four parts, as in the configuration.
        if (request.Client is not null
            && ((!request.Client.Contains(':', StringComparison.Ordinal) && request.Client.Count(c => c == '.') != 3)
                || !IPAddress.TryParse(request.Client, out client)))
        {
            Console.Error.WriteLine($"pgproxy: --client: '{request.Client}' is not an IP address");
            return Commands.Failure;
        }

        if (!TryReadSql(request.SqlSource, standardInput, out string? sql))
        {
            return Commands.Failure;
        }

        IReadOnlyList<SqlStatementSpan> statements;
        try
        {
            statements = SplitForReport(sql);
        }
        catch (SqlParseException exception)
        {
            Console.Error.WriteLine($"pgproxy: cannot split {Describe(request.SqlSource)} into statements: {exception.Message}");
            return Commands.Failure;
        }

        RuleSet rules = RuleSet.Build(instance.Rules, instance.Masks, config.Settings);
        var subject = new RuleSubject(request.User, request.Database, request.ApplicationName, client);
        var results = new List<StatementResult>(statements.Count);

        // Without a server there is no catalog: masks' checks go by the names the configuration gives (views unknown).
        MaskSet masks = rules.Masks;
        foreach (SqlStatementSpan span in statements)
        {
            string text = span.TextOf(sql);
            RuleDecision decision = rules.Evaluate(text, subject, request.Protocol, NullLogger.Instance, sessionId: 0);
            MaskStatementRefusal? maskRefusal = decision.Refusal is null ? masks.CheckWithoutCatalog(decision.Text ?? text, subject) : null;
            results.Add(new StatementResult(results.Count + 1, LineOf(sql, span.Start), text, decision, maskRefusal));
        }

        string output = request.Json ? FormatJson(instance.Listen.Name, results, !masks.IsEmpty) : FormatText(results);
        if (request.Expect is not { } expect)
        {
            Console.Out.Write(output);
            return Commands.Success;
        }

        string expected;
        try
        {
            expected = File.ReadAllText(expect.FullName);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"pgproxy: --expect: cannot read {expect.FullName}: {exception.Message}");
            return Commands.Failure;
        }

        string[] expectedLines = Lines(expected);
        string[] actualLines = Lines(output);
        if (expectedLines.SequenceEqual(actualLines, StringComparer.Ordinal))
        {
            Console.Out.WriteLine($"test-rules: output matches {expect.FullName}");
            return Commands.Success;
        }

        Console.Out.Write(LineDiff.Format(expect.FullName, "test-rules", expectedLines, actualLines));
        Console.Error.WriteLine($"pgproxy: test-rules output differs from {expect.FullName}");
        return Commands.Failure;
    }

    /// <summary><c>pgproxy fingerprint 'SQL'</c>: the fingerprint and normalized text of each statement, for <c>fingerprint</c> rules.</summary>
    public static int Fingerprint(string source, TextReader standardInput)
    {
        if (!TryParser())
        {
            return Commands.Failure;
        }

        // An argument is the SQL itself; '-' reads it from standard input.
        string sql = source == "-" ? standardInput.ReadToEnd() : source;
        try
        {
            var output = new StringBuilder();
            // The parser's split, not the lexer's: a statement the parser rejects has no fingerprint, and its error says why.
            foreach (SqlStatementSpan span in PostgresParser.Split(sql))
            {
                string statement = span.TextOf(sql);
                if (output.Length > 0)
                {
                    output.Append('\n');
                }

                output.Append("fingerprint: ").Append(PostgresParser.Fingerprint(statement).Text).Append('\n')
                    .Append("normalized: ").Append(Indent(PostgresParser.Normalize(statement))).Append('\n');
            }

            if (output.Length == 0)
            {
                Console.Error.WriteLine("pgproxy: fingerprint: no SQL statement given");
                return Commands.Failure;
            }

            Console.Out.Write(output.ToString());
            return Commands.Success;
        }
        catch (SqlParseException exception)
        {
            Console.Error.WriteLine($"pgproxy: cannot fingerprint: {exception.Message}");
            return Commands.Failure;
        }
    }

    private static bool TryParser()
    {
        if (PostgresParser.AvailabilityProblem is { } problem)
        {
            Console.Error.WriteLine($"pgproxy: the rules need the PostgreSQL parser: {problem}");
            return false;
        }

        return true;
    }

    private static bool TryReadSql(string source, TextReader standardInput, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? sql)
    {
        sql = null;
        if (source == "-")
        {
            sql = standardInput.ReadToEnd();
            return true;
        }

        try
        {
            sql = File.ReadAllText(source);
            return true;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"pgproxy: cannot read {source}: {exception.Message}");
            return false;
        }
    }

    /// <summary>The statements of a SQL file, split by the parser; by the lexer when the parser rejects the text, so a typo in one statement still reports the others.</summary>
    /// <exception cref="SqlParseException">The lexer rejects the text too (an unterminated quote or comment).</exception>
    private static IReadOnlyList<SqlStatementSpan> SplitForReport(string sql)
    {
        try
        {
            return PostgresParser.Split(sql);
        }
        catch (SqlParseException)
        {
            return PostgresParser.SplitWithScanner(sql);
        }
    }

    private static string Describe(string source) => source == "-" ? "standard input" : source;

    private static int LineOf(string text, int index)
    {
        int line = 1;
        for (int position = 0; position < index; position++)
        {
            if (text[position] == '\n')
            {
                line++;
            }
        }

        return line;
    }

    private static string[] Lines(string text)
    {
        string normalized = text.Replace("\r\n", "\n", StringComparison.Ordinal);
        return (normalized.EndsWith('\n') ? normalized[..^1] : normalized).Split('\n');
    }

    /// <summary>A statement's later lines indented under its first, so that each report line starts with what it is.</summary>
    private static string Indent(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("\n", "\n    ", StringComparison.Ordinal);

    private static string FormatText(IReadOnlyList<StatementResult> results)
    {
        var output = new StringBuilder();
        foreach (StatementResult result in results)
        {
            if (output.Length > 0)
            {
                output.Append('\n');
            }

            output.Append(CultureInfo.InvariantCulture, $"statement {result.Number} (line {result.Line}): {Indent(result.Text)}\n");
            RuleDecision decision = result.Decision;
            if (decision.Hits.Count == 0)
            {
                output.Append("  no rule matched\n");
            }

            foreach (RuleHit hit in decision.Hits)
            {
                output.Append(CultureInfo.InvariantCulture, $"  rule {hit.Rule.Name} ({ModeName(hit.Rule.Mode)}): {Actions(hit.Rule.Config)}");
                switch (hit.Kind)
                {
                    case RuleHitKind.TimedOut:
                        output.Append(", timed out: skipped");
                        break;
                    case RuleHitKind.LogOnly when hit.Refusal is { } refusal:
                        output.Append(CultureInfo.InvariantCulture, $", would refuse with {refusal.SqlState} {refusal.Message}");
                        break;
                    case RuleHitKind.LogOnly when hit.Rule.Config.Changes:
                        output.Append(CultureInfo.InvariantCulture, $", would give: {Indent(hit.After)}");
                        break;
                }

                output.Append('\n');
            }

            bool maskRefuses = false;
            if (result.MaskRefusal is { } byMask)
            {
                maskRefuses = !byMask.IsLogOnly;
                output.Append(CultureInfo.InvariantCulture, $"  mask {byMask.Mask.Name} ({ModeName(byMask.Mask.Mode)}): {(maskRefuses ? "refuse" : "would refuse")} with {byMask.SqlState} {byMask.Message}\n");
            }

            output.Append(decision switch
            {
                { Refusal: { } refusal } => $"  refused: {refusal.SqlState} {refusal.Message}\n",
                _ when maskRefuses => $"  refused: {result.MaskRefusal!.SqlState} {result.MaskRefusal.Message}\n",
                { IsUnchanged: true } => "  after: unchanged\n",
                _ => $"  after: {Indent(decision.Text!)}\n",
            });
        }

        return output.ToString();
    }

    /// <summary>
    /// The JSON form. With <paramref name="withMasks"/> (the instance has masks) each statement also has a "masks" list;
    /// without, it is left out, so that golden files of rules alone stay as they were.
    /// </summary>
    private static string FormatJson(string instance, IReadOnlyList<StatementResult> results, bool withMasks)
    {
        using var buffer = new MemoryStream();
        var options = new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        using (var json = new Utf8JsonWriter(buffer, options))
        {
            json.WriteStartObject();
            json.WriteString("instance", instance);
            json.WriteStartArray("statements");
            foreach (StatementResult result in results)
            {
                RuleDecision decision = result.Decision;
                json.WriteStartObject();
                json.WriteNumber("statement", result.Number);
                json.WriteNumber("line", result.Line);
                json.WriteString("text", result.Text);
                json.WriteStartArray("rules");
                foreach (RuleHit hit in decision.Hits)
                {
                    json.WriteStartObject();
                    json.WriteString("name", hit.Rule.Name);
                    json.WriteString("mode", ModeName(hit.Rule.Mode));
                    json.WriteString("actions", Actions(hit.Rule.Config));
                    json.WriteString("outcome", hit.Kind switch
                    {
                        RuleHitKind.Applied => "applied",
                        RuleHitKind.LogOnly => "log-only",
                        _ => "timed-out",
                    });
                    json.WriteString("result", hit.After);
                    WriteRefusal(json, "refusal", hit.Refusal);
                    json.WriteEndObject();
                }

                json.WriteEndArray();
                bool maskRefuses = result.MaskRefusal is { IsLogOnly: false };
                if (withMasks)
                {
                    json.WriteStartArray("masks");
                    if (result.MaskRefusal is { } byMask)
                    {
                        json.WriteStartObject();
                        json.WriteString("name", byMask.Mask.Name);
                        json.WriteString("mode", ModeName(byMask.Mask.Mode));
                        json.WriteString("outcome", maskRefuses ? "refused" : "log-only");
                        WriteRefusal(json, "refusal", new RuleRefusal(byMask.SqlState, byMask.Message));
                        json.WriteEndObject();
                    }

                    json.WriteEndArray();
                }

                json.WriteString("after", decision.Text ?? result.Text);
                json.WriteBoolean("changed", !decision.IsUnchanged || maskRefuses);
                WriteRefusal(json, "refused", decision.Refusal ?? (maskRefuses ? new RuleRefusal(result.MaskRefusal!.SqlState, result.MaskRefusal.Message) : null));
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private static void WriteRefusal(Utf8JsonWriter json, string name, RuleRefusal? refusal)
    {
        if (refusal is null)
        {
            json.WriteNull(name);
            return;
        }

        json.WriteStartObject(name);
        json.WriteString("sqlstate", refusal.SqlState);
        json.WriteString("message", refusal.Message);
        json.WriteEndObject();
    }

    private static string ModeName(RuleMode mode) => mode == RuleMode.LogOnly ? "log-only" : "enforce";

    private static string Actions(RuleConfig rule)
    {
        var actions = new List<string>(3);
        if (rule.Refuse is not null)
        {
            actions.Add("refuse");
        }

        if (rule.Rewrite is not null)
        {
            actions.Add("rewrite");
        }

        if (rule.Tag is not null)
        {
            actions.Add("tag");
        }

        if (rule.Log)
        {
            actions.Add("log");
        }

        return string.Join(", ", actions);
    }

    private sealed record StatementResult(int Number, int Line, string Text, RuleDecision Decision, MaskStatementRefusal? MaskRefusal);
}

/// <summary>A line diff in the unified style, for <c>test-rules --expect</c>: what a reviewer of a failed CI run reads.</summary>
internal static class LineDiff
{
    private const int Context = 2;

    /// <summary>The largest alignment table built (4 bytes a cell): golden files of tens of thousands of lines still fit.</summary>
    private const long MaxCells = 25_000_000;

    /// <summary>The lines of the longest common subsequence get ' ', the others '-' (expected only) or '+' (actual only), in hunks with two lines of context.</summary>
    public static string Format(string expectedName, string actualName, string[] expected, string[] actual)
    {
        List<(char Mark, string Line, int ExpectedLine, int ActualLine)> script = Script(expected, actual);
        var output = new StringBuilder();
        output.Append(CultureInfo.InvariantCulture, $"--- {expectedName}\n+++ {actualName}\n");
        int index = 0;
        while (index < script.Count)
        {
            if (script[index].Mark == ' ')
            {
                index++;
                continue;
            }

            int start = Math.Max(0, index - Context);
            int end = index;
            while (end < script.Count)
            {
                if (script[end].Mark != ' ')
                {
                    end++;
                    continue;
                }

                int same = end;
                while (same < script.Count && script[same].Mark == ' ')
                {
                    same++;
                }

                if (same == script.Count || same - end > 2 * Context)
                {
                    end = Math.Min(script.Count, end + Context);
                    break;
                }

                end = same;
            }

            output.Append(CultureInfo.InvariantCulture, $"@@ -{script[start].ExpectedLine} +{script[start].ActualLine} @@\n");
            for (int line = start; line < end; line++)
            {
                output.Append(script[line].Mark).Append(script[line].Line).Append('\n');
            }

            index = end;
        }

        return output.ToString();
    }

    private static List<(char Mark, string Line, int ExpectedLine, int ActualLine)> Script(string[] expected, string[] actual)
    {
        if ((long)expected.Length * actual.Length > MaxCells)
        {
            // Too long to align in memory: everything from the first difference on, as removed then added.
            int first = 0;
            while (first < expected.Length && first < actual.Length && string.Equals(expected[first], actual[first], StringComparison.Ordinal))
            {
                first++;
            }

            return
            [
                .. expected.Take(first).Select((line, i) => (' ', line, i + 1, i + 1)),
                .. expected.Skip(first).Select((line, i) => ('-', line, first + i + 1, first + 1)),
                .. actual.Skip(first).Select((line, i) => ('+', line, expected.Length + 1, first + i + 1)),
            ];
        }

        // Lengths of the longest common subsequences of every pair of suffixes: enough for golden files of rules.
        var lengths = new int[expected.Length + 1, actual.Length + 1];
        for (int i = expected.Length - 1; i >= 0; i--)
        {
            for (int j = actual.Length - 1; j >= 0; j--)
            {
                lengths[i, j] = string.Equals(expected[i], actual[j], StringComparison.Ordinal)
                    ? lengths[i + 1, j + 1] + 1
                    : Math.Max(lengths[i + 1, j], lengths[i, j + 1]);
            }
        }

        var script = new List<(char, string, int, int)>();
        int e = 0;
        int a = 0;
        while (e < expected.Length || a < actual.Length)
        {
            if (e < expected.Length && a < actual.Length && string.Equals(expected[e], actual[a], StringComparison.Ordinal))
            {
                script.Add((' ', expected[e], e + 1, a + 1));
                e++;
                a++;
            }
            else if (e < expected.Length && (a == actual.Length || lengths[e + 1, a] >= lengths[e, a + 1]))
            {
                script.Add(('-', expected[e], e + 1, a + 1));
                e++;
            }
            else
            {
                script.Add(('+', actual[a], e + 1, a + 1));
                a++;
            }
        }

        return script;
    }
}
