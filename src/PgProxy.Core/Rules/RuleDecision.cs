using PgProxy.Core.Configuration;

namespace PgProxy.Core.Rules;

/// <summary>What the rules do to a message, as a whole.</summary>
public enum RuleOutcome
{
    /// <summary>The message goes on as it arrived (log-only and <c>log</c> rules may still have matched).</summary>
    Unchanged,

    /// <summary>The message goes on with <see cref="RuleDecision.Text"/> instead of its own text.</summary>
    Rewritten,

    /// <summary>At least one statement is refused: see <see cref="RuleDecision.Refusal"/> and <see cref="RuleDecision.RefusesWholeMessage"/>.</summary>
    Refused,
}

/// <summary>
/// The rules' decision for one query text, from one <see cref="RuleSet"/>: immutable and shared, since the same text from
/// the same kind of session gets the same decision from the cache. <see cref="Unchanged"/> is one instance for every
/// message no rule touched, so that path allocates nothing.
/// </summary>
public sealed class RuleDecision
{
    private RuleDecision(RuleOutcome outcome, string? text, RuleRefusal? refusal, bool refusesWholeMessage, RuleHit[] hits)
    {
        Outcome = outcome;
        Text = text;
        Refusal = refusal;
        RefusesWholeMessage = refusesWholeMessage;
        HitArray = hits;
        long characters = text?.Length ?? 0;
        foreach (RuleHit hit in hits)
        {
            characters += hit.Before.Length + hit.After.Length;
            HasTimeout |= hit.Kind == RuleHitKind.TimedOut;
        }

        RetainedCharacters = characters;
    }

    /// <summary>No rule matched: the message goes on as it arrived.</summary>
    public static RuleDecision Unchanged { get; } = new(RuleOutcome.Unchanged, null, null, false, []);

    public RuleOutcome Outcome { get; }

    /// <summary>
    /// The text to send instead of the message's, when <see cref="Outcome"/> is not <see cref="RuleOutcome.Unchanged"/>: the
    /// statements the rules changed, each refused statement replaced by one that makes the server raise its refusal
    /// (<see cref="Interception.RefusalStatements"/>), and everything else byte for byte as it arrived. Null when unchanged.
    /// </summary>
    public string? Text { get; }

    /// <summary>The refusal of the first refused statement; null when none is refused.</summary>
    public RuleRefusal? Refusal { get; }

    /// <summary>
    /// True when every statement of the message is refused: nothing of it would run, so the relay may answer the refusal
    /// the way it refuses a whole message (for a Parse, Parse-Bind-Execute of the raising statement, so that the error
    /// comes at once rather than at the client's first Execute).
    /// </summary>
    public bool RefusesWholeMessage { get; }

    /// <summary>Every rule that matched (in both modes) or timed out, in the order they ran, statement by statement.</summary>
    public IReadOnlyList<RuleHit> Hits => HitArray;

    /// <summary>True when the message goes on as it arrived.</summary>
    public bool IsUnchanged => Outcome == RuleOutcome.Unchanged;

    /// <summary>The hits as an array: replaying them on a cache hit must not allocate an enumerator.</summary>
    internal RuleHit[] HitArray { get; }

    /// <summary>True when a rule was skipped because one of its patterns timed out: the decision may not be the rules' last word.</summary>
    internal bool HasTimeout { get; }

    /// <summary>Characters this decision keeps alive, for the cache's memory budget.</summary>
    internal long RetainedCharacters { get; }

    internal static RuleDecision Create(RuleOutcome outcome, string? text, RuleRefusal? refusal, bool refusesWholeMessage, List<RuleHit>? hits) =>
        outcome == RuleOutcome.Unchanged && (hits is null || hits.Count == 0)
            ? Unchanged
            : new RuleDecision(outcome, text, refusal, refusesWholeMessage, hits is null ? [] : [.. hits]);
}

/// <summary>One rule that matched one statement (or timed out on it), and what it did or would have done.</summary>
public sealed class RuleHit
{
    internal RuleHit(Rule rule, int statement, RuleHitKind kind, string before, string after, RuleRefusal? refusal)
    {
        Rule = rule;
        Statement = statement;
        Kind = kind;
        Before = before;
        After = after;
        Refusal = refusal;
    }

    public Rule Rule { get; }

    /// <summary>Index of the statement in the message, from 0; -1 when the rule timed out on the session's names, before any statement.</summary>
    public int Statement { get; }

    public RuleHitKind Kind { get; }

    /// <summary>The statement's text when the rule saw it (after the rules before it with <c>continue</c>), or the message's for a timeout on names.</summary>
    public string Before { get; }

    /// <summary>
    /// The statement as the rule left it, or for a log-only rule as it would have left it; for a refusal, the statement that
    /// raises it. Equal to <see cref="Before"/> for a rule that only logs, and for a timeout.
    /// </summary>
    public string After { get; }

    /// <summary>The refusal, when the rule refuses (or, log-only, would refuse).</summary>
    public RuleRefusal? Refusal { get; }

    /// <summary>True for a log-only rule (its own mode, or <c>settings.rules-mode</c>): it changed nothing.</summary>
    public bool IsLogOnly => Kind == RuleHitKind.LogOnly;
}

/// <summary>How a rule met a statement.</summary>
public enum RuleHitKind
{
    /// <summary>An enforcing rule matched and acted: <see cref="RuleHit.After"/> is what goes on.</summary>
    Applied,

    /// <summary>A log-only rule matched: <see cref="RuleHit.After"/> is what it would have produced; nothing changed.</summary>
    LogOnly,

    /// <summary>One of the rule's regular expressions ran past <c>settings.rule-timeout</c>: the rule was skipped.</summary>
    TimedOut,
}
