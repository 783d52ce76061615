namespace PgProxy.Core.Rules;

/// <summary>
/// What one rule has done since its <see cref="RuleSet"/> was built, for the intercept log at reload and shutdown, and
/// for the admin console and metrics. Safe to read from any thread while sessions count; a reload builds new counters.
/// </summary>
public sealed class RuleCounters
{
    private long matched;
    private long applied;
    private long logOnlyHits;
    private long refusals;
    private long regexTimeouts;

    /// <summary>Statements the rule matched, in either mode.</summary>
    public long Matched => Interlocked.Read(ref matched);

    /// <summary>Statements an enforcing rule acted on: rewrote, tagged, refused or logged.</summary>
    public long Applied => Interlocked.Read(ref applied);

    /// <summary>Statements a log-only rule matched and left as they were.</summary>
    public long LogOnlyHits => Interlocked.Read(ref logOnlyHits);

    /// <summary>Statements the rule refused (enforcing only; a log-only refusal counts in <see cref="LogOnlyHits"/>).</summary>
    public long Refusals => Interlocked.Read(ref refusals);

    /// <summary>Regular-expression matches that ran past <c>settings.rule-timeout</c>, each skipping the rule for that query.</summary>
    public long RegexTimeouts => Interlocked.Read(ref regexTimeouts);

    internal void CountMatched() => Interlocked.Increment(ref matched);

    internal void CountApplied() => Interlocked.Increment(ref applied);

    internal void CountLogOnlyHit() => Interlocked.Increment(ref logOnlyHits);

    internal void CountRefusal() => Interlocked.Increment(ref refusals);

    internal void CountRegexTimeout() => Interlocked.Increment(ref regexTimeouts);
}
