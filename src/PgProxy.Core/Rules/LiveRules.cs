namespace PgProxy.Core.Rules;

/// <summary>
/// The rules in force for one instance, for every session of it, open ones included: the configuration owner swaps in
/// each snapshot's <see cref="RuleSet"/> when it swaps the snapshot, and a session reads <see cref="Current"/> at each
/// statement. That is the one exception to "open sessions keep their snapshot": rules apply from the next statement.
/// </summary>
internal sealed class LiveRules
{
    private RuleSet current = RuleSet.Empty;

    public RuleSet Current
    {
        get => Volatile.Read(ref current);
        set => Volatile.Write(ref current, value);
    }
}
