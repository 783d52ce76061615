using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;
using PgProxy.Core.Masks;
using PgProxy.Sql;

namespace PgProxy.Core.Rules;

/// <summary>
/// The rules of one instance, built once from its configuration and frozen: what they do to a query text, for any
/// session, from any thread. Decisions are cached by text (and by whichever of the session's names, client address
/// and protocol the rules look at) from a text's second evaluation, so a query seen before costs a lookup that
/// allocates nothing; a reload builds a new set, so its cache starts empty.
/// </summary>
/// <remarks>
/// <para>Rules run in list order on each statement of a message (a simple Query may hold several; a Parse holds one).
/// The first enforcing rule that changes a statement (rewrite, tag or refuse) ends the list for it, unless it has
/// <c>continue: true</c>, and then later rules see the changed text. A refusal always ends it. Log-only rules change
/// nothing and never end the list: they are matched, counted and logged with the text they would have produced.</para>
/// <para>Counting and logging happen on every evaluation, cached or not: a cached decision carries its hits, and
/// replays them. A regular expression that times out is counted and logged when it happens; the cached decision
/// then skips that rule for that text without trying again, which is what keeps a pathological query from costing
/// the timeout on every repetition.</para>
/// </remarks>
public sealed class RuleSet
{
    /// <summary>Decisions kept at most; the cache starts again empty past it.</summary>
    public const int CacheCapacity = 10_000;

    /// <summary>Characters the cached decisions may keep alive (queries, new texts, texts of hits): 64 MB of UTF-16.</summary>
    public const long CacheCharacterBudget = 32L * 1024 * 1024;

    /// <summary>Texts remembered as having timed out once; past it the memory starts again empty.</summary>
    private const int TimedOutTextCapacity = 1_000;

    private readonly Rule[] rules;
    private readonly DecisionCache cache;

    // One linear-time expression that matches where any of the rules' own linear `query` patterns would (their union):
    // a statement it does not match skips all of those rules with one scan instead of one scan each. Measured on a
    // pgbench select, compare.sh's 20 patterns cost 18 µs one by one and 0.3 µs as their union. Null without such rules.
    private readonly Regex? anyQueryPattern;
    private readonly bool[] inAnyQueryPattern;

    // Texts whose decision had a timeout once and was not cached (see Evaluate).
    private readonly ConcurrentDictionary<string, bool> timedOutOnce = new(StringComparer.Ordinal);
    private readonly bool usesUser;
    private readonly bool usesDatabase;
    private readonly bool usesApplicationName;
    private readonly bool usesClient;
    private readonly bool usesProtocol;
    private readonly string timeoutText;

    private RuleSet(Rule[] rules, TimeSpan ruleTimeout, MaskSet masks)
    {
        Masks = masks;
        this.rules = rules;
        cache = new DecisionCache(CacheCapacity, CacheCharacterBudget);
        usesUser = rules.Any(rule => rule.Config.Match.Users.Count > 0);
        usesDatabase = rules.Any(rule => rule.Config.Match.Databases.Count > 0);
        usesApplicationName = rules.Any(rule => rule.Config.Match.ApplicationNames.Count > 0);
        usesClient = rules.Any(rule => rule.Config.Match.Clients.Count > 0);
        usesProtocol = rules.Any(rule => rule.Config.Match.Protocol is not null);
        timeoutText = ConfigValueParsers.FormatDuration(ruleTimeout);
        anyQueryPattern = BuildUnion(rules, ruleTimeout, out inAnyQueryPattern);
        Rules = rules;
        WarmUp(rules);
    }

    /// <summary>A set without rules: every message goes on unchanged, at no cost.</summary>
    public static RuleSet Empty { get; } = new([], TimeSpan.FromMilliseconds(100), MaskSet.Empty);

    /// <summary>The rules in the order they run, with their counters.</summary>
    public IReadOnlyList<Rule> Rules { get; }

    /// <summary>True when there is no rule (there may be masks).</summary>
    public bool IsEmpty => rules.Length == 0;

    /// <summary>The instance's masks, swapped in with its rules.</summary>
    public MaskSet Masks { get; }

    /// <summary>Decisions in the cache now.</summary>
    internal int CachedDecisions => cache.Count;

    /// <summary>Builds the rule set of one instance.</summary>
    /// <param name="rules">The instance's <c>rules</c>, as the configuration reader validated them.</param>
    /// <param name="settings">For <c>rules-mode</c> (log-only makes every rule log-only) and <c>rule-timeout</c> (for the logs; the patterns were compiled with it).</param>
    public static RuleSet Build(IReadOnlyList<RuleConfig> rules, ProxySettings settings) => Build(rules, [], settings);

    /// <summary>Builds the rule set of one instance, with its masks.</summary>
    /// <param name="rules">The instance's <c>rules</c>, as the configuration reader validated them.</param>
    /// <param name="masks">The instance's <c>masks</c>, likewise.</param>
    /// <param name="settings">For <c>rules-mode</c> (log-only makes every rule and mask log-only) and <c>rule-timeout</c>.</param>
    public static RuleSet Build(IReadOnlyList<RuleConfig> rules, IReadOnlyList<MaskConfig> masks, ProxySettings settings)
    {
        ArgumentNullException.ThrowIfNull(rules);
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentNullException.ThrowIfNull(settings);
        return rules.Count == 0 && masks.Count == 0
            ? Empty
            : new RuleSet([.. rules.Select(rule => new Rule(rule, settings.RulesMode))], settings.RuleTimeout, MaskSet.Build(masks, settings));
    }

    /// <summary>
    /// What the rules do to one Query or Parse text. Never throws for what the text holds: SQL the parser cannot read
    /// simply matches no rule that needs the parse, and a regular expression that times out skips its rule.
    /// </summary>
    /// <param name="queryText">The message's text, decoded.</param>
    /// <param name="subject">Who sent it.</param>
    /// <param name="protocol">Which message carried it: a simple Query (split into statements) or a Parse (one statement).</param>
    /// <param name="log">The intercept log: rewrites, refusals, log-only matches, <c>log</c> rules and timeouts go there.</param>
    /// <param name="sessionId">The session, for the log lines.</param>
    public RuleDecision Evaluate(string queryText, in RuleSubject subject, QueryProtocol protocol, ILogger log, long sessionId)
    {
        ArgumentNullException.ThrowIfNull(queryText);
        ArgumentNullException.ThrowIfNull(log);
        if (rules.Length == 0)
        {
            return RuleDecision.Unchanged;
        }

        var session = new SessionKey(
            usesUser ? subject.User : null,
            usesDatabase ? subject.Database : null,
            usesApplicationName ? subject.ApplicationName : null,
            usesClient ? subject.Client : null,
            usesProtocol ? (int)protocol : -1);
        bool fresh = false;
        if (!cache.TryGet(queryText, session, out RuleDecision decision))
        {
            decision = Decide(queryText, subject, protocol);
            fresh = true;

            // A timeout may be the text's fault (a pattern that backtracks on it) or the moment's (a GC pause, a starved
            // CPU): the first is cached, so that a pathological query does not cost the timeout each time it comes
            // again, but only once the same text has timed out twice, so that a passing stall does not leave a rule
            // skipped for that text until the cache empties.
            if (!decision.HasTimeout)
            {
                if (cache.Admit(queryText))
                {
                    cache.Add(queryText, session, decision);
                }
            }
            else if (timedOutOnce.TryRemove(queryText, out _))
            {
                cache.Add(queryText, session, decision);
            }
            else
            {
                if (timedOutOnce.Count >= TimedOutTextCapacity)
                {
                    timedOutOnce.Clear();
                }

                timedOutOnce.TryAdd(queryText, true);
            }
        }

        if (decision.HitArray.Length > 0)
        {
            Report(decision, protocol == QueryProtocol.Simple ? "query" : "parse", log, sessionId, fresh);
        }

        return decision;
    }

    /// <summary>Writes every rule's counters to the intercept log, one line per rule: at reload and at shutdown.</summary>
    public void WriteCounters(ILogger log, string instance)
    {
        ArgumentNullException.ThrowIfNull(log);
        foreach (Rule rule in rules)
        {
            RuleCounters counters = rule.Counters;
            InterceptLog.RuleCounters(
                log, instance, rule.Name, rule.IsLogOnly ? "log-only" : "enforce",
                counters.Matched, counters.Applied, counters.LogOnlyHits, counters.Refusals, counters.RegexTimeouts);
        }

        Masks.WriteCounters(log, instance);
    }

    /// <summary>
    /// Runs every pattern once on a short text. The first match of an expression builds its matcher (the linear engine
    /// builds its automaton lazily) and JIT-compiles the engine's code: measured past 100 ms on a loaded machine, which
    /// would time out the first query a rule meets. Paid here, at start-up or reload, it is paid before any session.
    /// </summary>
    private static void WarmUp(Rule[] rules)
    {
        foreach (Rule rule in rules)
        {
            RuleMatch match = rule.Config.Match;
            IEnumerable<Regex?> patterns = match.Users.Concat(match.Databases).Concat(match.ApplicationNames)
                .Select(name => name.Regex)
                .Append(match.Query?.Regex);
            foreach (Regex? regex in patterns)
            {
                try
                {
                    regex?.IsMatch("SELECT 1 FROM t WHERE a = 'x' -- warm-up");
                }
                catch (RegexMatchTimeoutException)
                {
                    // A pattern too slow even here will time out on queries as well, and be counted there.
                }
            }
        }
    }

    /// <summary>
    /// The union of the rules' linear <c>query</c> patterns, each in a group of its own so that its inline options and
    /// alternatives stay its own. A pattern with a <c>#</c> is left out (under an inline <c>(?x)</c> a comment would run
    /// past its group's end), and so is every backtracking one; those rules run their own pattern as before. Null when
    /// fewer than two patterns qualify (one pattern is its own union) or the union does not compile.
    /// </summary>
    private static Regex? BuildUnion(Rule[] rules, TimeSpan timeout, out bool[] included)
    {
        included = new bool[rules.Length];
        var parts = new List<string>();
        for (int index = 0; index < rules.Length; index++)
        {
            if (rules[index].Config.Match.Query is { IsLinear: true } query && !query.Pattern.Contains('#', StringComparison.Ordinal))
            {
                included[index] = true;
                parts.Add("(?:" + query.Pattern + ")");
            }
        }

        if (parts.Count < 2)
        {
            Array.Clear(included);
            return null;
        }

        try
        {
            return new Regex(string.Join('|', parts), RegexOptions.CultureInvariant | RegexOptions.NonBacktracking, timeout);
        }
        catch (Exception exception) when (exception is ArgumentException or NotSupportedException)
        {
            Array.Clear(included);
            return null;
        }
    }

    /// <summary>Whether any pattern of the union may match the text; true when the union ran out of time (each rule then decides, and counts its own timeout).</summary>
    private bool AnyQueryPatternMayMatch(string text)
    {
        try
        {
            return anyQueryPattern!.IsMatch(text);
        }
        catch (RegexMatchTimeoutException)
        {
            return true;
        }
    }

    /// <summary>Splits a message into its statements, the way the server will run them.</summary>
    /// <remarks>
    /// A text without a semicolon is one statement, with no call to the parser; so is one whose only semicolon ends it
    /// (pgbench's and many drivers' statements): a second statement would need a second semicolon or text after the
    /// first. The parser's split costs about 10 µs, most of a rule decision for a text never seen. A text the parser
    /// rejects is split by the lexer alone, and one the lexer rejects is taken whole; either way the server refuses that
    /// text before running any of it, so the split only decides what the log shows.
    /// </remarks>
    internal static IReadOnlyList<SqlStatementSpan> SplitStatements(string text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return [];
        }

        int semicolon = text.IndexOf(';', StringComparison.Ordinal);
        if (semicolon < 0)
        {
            return [new SqlStatementSpan(0, text.Length)];
        }

        if (semicolon == text.AsSpan().TrimEnd().Length - 1)
        {
            int end = text.AsSpan(0, semicolon).TrimEnd().Length;
            return end == 0 ? [] : [new SqlStatementSpan(0, end)];
        }

        try
        {
            return PostgresParser.Split(text);
        }
        catch (SqlParseException)
        {
            try
            {
                return PostgresParser.SplitWithScanner(text);
            }
            catch (SqlParseException)
            {
                return [new SqlStatementSpan(0, text.Length)];
            }
        }
    }

    private RuleDecision Decide(string text, in RuleSubject subject, QueryProtocol protocol)
    {
        List<RuleHit>? hits = null;

        // The session's names, address and protocol are the same for every statement: which rules they let through is
        // worked out once per message.
        var applies = new bool[rules.Length];
        bool any = false;
        for (int index = 0; index < rules.Length; index++)
        {
            try
            {
                applies[index] = rules[index].AppliesTo(subject, protocol);
                any |= applies[index];
            }
            catch (RegexMatchTimeoutException)
            {
                (hits ??= []).Add(new RuleHit(rules[index], -1, RuleHitKind.TimedOut, text, text, null));
            }
        }

        if (!any)
        {
            return RuleDecision.Create(RuleOutcome.Unchanged, null, null, false, hits);
        }

        IReadOnlyList<SqlStatementSpan> spans = SplitStatements(text);
        string?[]? results = null;
        RuleRefusal? firstRefusal = null;
        int refused = 0;
        for (int statement = 0; statement < spans.Count; statement++)
        {
            SqlStatementSpan span = spans[statement];
            string original = span.Start == 0 && span.Length == text.Length ? text : span.TextOf(text);
            string current = RunRules(statement, original, applies, ref hits, out RuleRefusal? refusal);
            if (refusal is not null)
            {
                firstRefusal ??= refusal;
                refused++;
            }

            if (!ReferenceEquals(current, original))
            {
                (results ??= new string?[spans.Count])[statement] = current;
            }
        }

        if (results is null)
        {
            return RuleDecision.Create(RuleOutcome.Unchanged, null, null, false, hits);
        }

        var changed = new StringBuilder(text.Length + 64);
        int position = 0;
        for (int statement = 0; statement < spans.Count; statement++)
        {
            if (results[statement] is { } replacement)
            {
                SqlStatementSpan span = spans[statement];
                changed.Append(text, position, span.Start - position).Append(replacement);
                position = span.End;
            }
        }

        changed.Append(text, position, text.Length - position);
        return firstRefusal is not null
            ? RuleDecision.Create(RuleOutcome.Refused, changed.ToString(), firstRefusal, refused == spans.Count, hits)
            : RuleDecision.Create(RuleOutcome.Rewritten, changed.ToString(), null, false, hits);
    }

    /// <summary>Runs the rules on one statement; returns its text as they leave it (the same instance when unchanged).</summary>
    private string RunRules(int statement, string original, bool[] applies, ref List<RuleHit>? hits, out RuleRefusal? refusal)
    {
        refusal = null;
        string current = original;
        var analysis = new StatementAnalysis(current);
        bool? unionMayMatch = null;
        for (int index = 0; index < rules.Length; index++)
        {
            if (!applies[index])
            {
                continue;
            }

            if (inAnyQueryPattern[index] && !(unionMayMatch ??= AnyQueryPatternMayMatch(current)))
            {
                continue;
            }

            Rule rule = rules[index];
            List<Match>? spans;
            try
            {
                if (!rule.Matches(analysis, out spans))
                {
                    continue;
                }
            }
            catch (RegexMatchTimeoutException)
            {
                (hits ??= []).Add(new RuleHit(rule, statement, RuleHitKind.TimedOut, current, current, null));
                continue;
            }

            string after = rule.Apply(current, spans);
            if (rule.IsLogOnly)
            {
                (hits ??= []).Add(new RuleHit(rule, statement, RuleHitKind.LogOnly, current, after, rule.Config.Refuse));
                continue;
            }

            (hits ??= []).Add(new RuleHit(rule, statement, RuleHitKind.Applied, current, after, rule.Config.Refuse));
            if (rule.Config.Refuse is { } refuse)
            {
                refusal = refuse;
                return after;
            }

            if (!rule.Config.Changes)
            {
                continue;
            }

            if (!string.Equals(after, current, StringComparison.Ordinal))
            {
                current = after;
                analysis = new StatementAnalysis(current);
                unionMayMatch = null;
            }

            if (!rule.Config.Continue)
            {
                break;
            }
        }

        return current;
    }

    /// <summary>Counts and logs a decision's hits, for the message being decided now (cached or not).</summary>
    private void Report(RuleDecision decision, string kind, ILogger log, long sessionId, bool fresh)
    {
        foreach (RuleHit hit in decision.HitArray)
        {
            Rule rule = hit.Rule;
            RuleCounters counters = rule.Counters;
            switch (hit.Kind)
            {
                case RuleHitKind.TimedOut:
                    if (fresh)
                    {
                        counters.CountRegexTimeout();
                        InterceptLog.RuleTimedOut(log, sessionId, rule.Name, timeoutText, kind, hit.Before);
                    }

                    break;
                case RuleHitKind.LogOnly:
                    counters.CountMatched();
                    counters.CountLogOnlyHit();
                    InterceptLog.RuleLogOnly(log, sessionId, kind, rule.Name, rule.WouldDo, hit.Before, hit.After);
                    break;
                default:
                    counters.CountMatched();
                    counters.CountApplied();
                    if (hit.Refusal is { } refusal)
                    {
                        counters.CountRefusal();
                        InterceptLog.Refused(log, sessionId, kind, rule.DisplayName, refusal.SqlState, refusal.Message, hit.Before);
                    }
                    else if (rule.Config.Changes)
                    {
                        InterceptLog.Rewritten(log, sessionId, kind, rule.DisplayName, hit.Before, hit.After);
                    }
                    else
                    {
                        InterceptLog.RuleLogged(log, sessionId, kind, rule.Name, hit.Before);
                    }

                    break;
            }
        }
    }
}
