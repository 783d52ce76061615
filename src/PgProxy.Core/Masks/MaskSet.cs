using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;
using PgProxy.Core.Rules;
using PgProxy.Sql;

namespace PgProxy.Core.Masks;

/// <summary>
/// The masks of one instance, built once from its configuration and frozen, held beside its rules (<see cref="RuleSet.Masks"/>)
/// so that a reload swaps both at once and they reach open sessions at their next statement. Besides the masks it keeps
/// what sessions learn for them: each database's <see cref="MaskCatalog"/>, and the parse facts of statement texts.
/// A reload builds a new set, so both start again empty.
/// </summary>
public sealed class MaskSet
{
    /// <summary>Statement texts whose facts are kept at most; past it the cache starts again empty.</summary>
    private const int FactsCapacity = 10_000;

    private readonly Mask[] masks;
    private readonly ConcurrentDictionary<string, MaskCatalog> catalogs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, MessageFacts> facts = new(StringComparer.Ordinal);
    private int catalogVersion;

    private MaskSet(Mask[] masks)
    {
        this.masks = masks;
        Masks = masks;
        OutputNameMasks = [.. masks.Where(mask => mask.Config.Columns.Any(column => column.IsOutputName))];
        UsesSubject = masks.Any(mask => !mask.Config.Unless.IsEmpty);
    }

    /// <summary>A set without masks: nothing is looked at.</summary>
    public static MaskSet Empty { get; } = new([]);

    /// <summary>The masks in configuration order (the first that covers a column masks it).</summary>
    public IReadOnlyList<Mask> Masks { get; }

    public bool IsEmpty => masks.Length == 0;

    /// <summary>Masks with a <c>*.column</c> name: they also mask result columns without a source that are named so.</summary>
    internal Mask[] OutputNameMasks { get; }

    /// <summary>Whether any mask has <c>unless</c>: otherwise every mask applies to every session.</summary>
    internal bool UsesSubject { get; }

    public static MaskSet Build(IReadOnlyList<MaskConfig> masks, ProxySettings settings)
    {
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentNullException.ThrowIfNull(settings);
        return masks.Count == 0 ? Empty : new MaskSet([.. masks.Select((mask, index) => new Mask(mask, settings.RulesMode, index))]);
    }

    /// <summary>Which masks apply to a session (by index): those whose <c>unless</c> does not exempt it. A pattern that times out exempts nobody.</summary>
    internal bool[] Applying(in RuleSubject subject)
    {
        var applies = new bool[masks.Length];
        for (int i = 0; i < masks.Length; i++)
        {
            try
            {
                applies[i] = !masks[i].Exempts(subject);
            }
            catch (RegexMatchTimeoutException)
            {
                masks[i].Counters.CountRegexTimeout();
                applies[i] = true;
            }
        }

        return applies;
    }

    /// <summary>
    /// Changes whenever a catalog is stored: a session's mask stage checks it for every row, and looks its catalog up
    /// again (two dictionary lookups) only when it changed.
    /// </summary>
    internal int CatalogVersion => Volatile.Read(ref catalogVersion);

    /// <summary>The database's catalog as read last, stale or not; null before any session read it.</summary>
    internal MaskCatalog? CatalogOf(string database) => catalogs.GetValueOrDefault(database);

    internal void Store(string database, MaskCatalog catalog)
    {
        if (catalogs.TryGetValue(database, out MaskCatalog? previous))
        {
            catalog.InheritAbsentNames(previous);
        }

        catalogs[database] = catalog;
        Interlocked.Increment(ref catalogVersion);
    }

    /// <summary>The statements of a Query or Parse text and their facts, parsed once per text.</summary>
    internal MessageFacts FactsOf(string text)
    {
        if (facts.TryGetValue(text, out MessageFacts? known))
        {
            return known;
        }

        IReadOnlyList<SqlStatementSpan> spans = RuleSet.SplitStatements(text);
        var statements = new MaskStatementFacts[spans.Count];
        for (int i = 0; i < spans.Count; i++)
        {
            SqlStatementSpan span = spans[i];
            statements[i] = MaskStatementFacts.Of(span.Start == 0 && span.Length == text.Length ? text : span.TextOf(text));
        }

        var result = new MessageFacts([.. spans], statements);
        if (facts.Count >= FactsCapacity)
        {
            facts.Clear();
        }

        facts.TryAdd(text, result);
        return result;
    }

    /// <summary>
    /// The masks' checks of one statement without a server, as <c>pgproxy test-rules</c> runs them: computations over
    /// masked columns and COPY out of masked tables, with the relations the configuration names (views are not known
    /// without the catalog). Null when no mask that applies to <paramref name="subject"/> refuses it.
    /// </summary>
    public MaskStatementRefusal? CheckWithoutCatalog(string statement, in RuleSubject subject)
    {
        ArgumentNullException.ThrowIfNull(statement);
        if (masks.Length == 0)
        {
            return null;
        }

        return MaskStatementCheck.Check(MaskStatementFacts.Of(statement), new ConfiguredMaskedRelations(masks), Applying(subject)) is { } refusal
            ? new MaskStatementRefusal(refusal.Mask, MaskRefusals.SqlState, refusal.Message)
            : null;
    }

    /// <summary>Writes every mask's counters to the intercept log, one line per mask: at reload and at shutdown.</summary>
    public void WriteCounters(ILogger log, string instance)
    {
        ArgumentNullException.ThrowIfNull(log);
        foreach (Mask mask in masks)
        {
            RuleCounters counters = mask.Counters;
            InterceptLog.MaskCounters(
                log, instance, mask.Name, mask.IsLogOnly ? "log-only" : "enforce",
                counters.Matched, counters.Applied, counters.LogOnlyHits, counters.Refusals, counters.RegexTimeouts);
        }
    }
}

/// <summary>A statement a mask refuses (or, log-only, would refuse), with the error the client gets.</summary>
public sealed record MaskStatementRefusal(Mask Mask, string SqlState, string Message)
{
    /// <summary>True when the mask is log-only: the statement would run unchanged.</summary>
    public bool IsLogOnly => Mask.Mode == RuleMode.LogOnly;
}

/// <summary>
/// A message's statements (spans of its text) and each one's facts, shared by every session that sends the text; and
/// the last outcome of the checks on them, so that a repeated statement costs a comparison, not a check.
/// </summary>
internal sealed class MessageFacts(SqlStatementSpan[] spans, MaskStatementFacts[] statements)
{
    private MaskCheckOutcome? lastOutcome;

    public SqlStatementSpan[] Spans { get; } = spans;

    public MaskStatementFacts[] Statements { get; } = statements;

    /// <summary>The last outcome, whatever catalog and masks it was for (compare before use). Written and read by any session.</summary>
    public MaskCheckOutcome? LastOutcome
    {
        get => Volatile.Read(ref lastOutcome);
        set => Volatile.Write(ref lastOutcome, value);
    }
}

/// <summary>The checks' outcome for one message, under one catalog and one choice of masks that apply: a refusal (or none) per statement.</summary>
internal sealed record MaskCheckOutcome(MaskCatalog Catalog, bool[] Applying, MaskRefusal?[] Refusals, bool HasDdl)
{
    /// <summary>Whether this outcome holds for <paramref name="catalog"/> and the masks <paramref name="applying"/> says apply.</summary>
    public bool IsFor(MaskCatalog catalog, bool[] applying) =>
        ReferenceEquals(catalog, Catalog) && applying.AsSpan().SequenceEqual(Applying);
}
