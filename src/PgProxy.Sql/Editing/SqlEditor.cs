namespace PgProxy.Sql;

/// <summary>
/// Collects replacements of spans of a query and applies them at once, keeping every character outside the replaced
/// spans exactly as the client wrote it (comments, whitespace, case, quoting). Positions are string indexes into the
/// original text, whatever the order the edits are added in; edits never see each other's output.
/// </summary>
/// <remarks>
/// Not thread-safe: one editor belongs to one rewrite. Replacements may touch (one ends where the next starts) but not
/// overlap. A zero-length replacement is an insertion; insertions at the same index are applied in the order they
/// were added, before a replacement that starts at that index.
/// </remarks>
public sealed class SqlEditor
{
    // Kept sorted by (Start, insertions before replacements, order added), so overlap is checked against neighbours only.
    private readonly List<Edit> edits = [];
    private int nextSequence;

    /// <summary>Starts an editor over <paramref name="original"/>.</summary>
    public SqlEditor(string original)
    {
        ArgumentNullException.ThrowIfNull(original);
        Original = original;
    }

    /// <summary>The text the edits apply to.</summary>
    public string Original { get; }

    /// <summary>True once any replacement has been added.</summary>
    public bool HasEdits => edits.Count > 0;

    /// <summary>Number of replacements added.</summary>
    public int EditCount => edits.Count;

    /// <summary>
    /// Replaces the <paramref name="length"/> characters at string index <paramref name="start"/> of the original
    /// text with <paramref name="replacement"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The span is not inside the original text.</exception>
    /// <exception cref="ArgumentException">The span overlaps one replaced before.</exception>
    public void Replace(int start, int length, string replacement)
    {
        ArgumentNullException.ThrowIfNull(replacement);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start, Original.Length - length, nameof(start));

        var edit = new Edit(start, length, replacement, nextSequence);
        int index = edits.BinarySearch(edit);
        // Sequence numbers are unique, so the search never finds an equal element: ~index is where it goes.
        index = ~index;
        if (index > 0 && Overlap(edits[index - 1], edit))
        {
            throw OverlapError(edits[index - 1], edit);
        }

        if (index < edits.Count && Overlap(edit, edits[index]))
        {
            throw OverlapError(edits[index], edit);
        }

        edits.Insert(index, edit);
        nextSequence++;
    }

    /// <summary>Inserts <paramref name="text"/> before the character at string index <paramref name="index"/>.</summary>
    public void Insert(int index, string text) => Replace(index, 0, text);

    /// <summary>Replaces one token, or the tokens from <paramref name="first"/> to <paramref name="last"/> inclusive
    /// with whatever lies between them (comments included).</summary>
    public void ReplaceTokens(SqlToken first, SqlToken last, string replacement)
    {
        if (last.End < first.Start)
        {
            throw new ArgumentException("The last token ends before the first token starts.", nameof(last));
        }

        Replace(first.Start, last.End - first.Start, replacement);
    }

    /// <summary>Replaces the span of one token.</summary>
    public void ReplaceToken(SqlToken token, string replacement) => Replace(token.Start, token.Length, replacement);

    /// <summary>
    /// The original text with every replacement made; the original text itself (same instance) when there is none.
    /// </summary>
    public string Apply()
    {
        if (edits.Count == 0)
        {
            return Original;
        }

        int length = Original.Length;
        foreach (Edit edit in edits)
        {
            length += edit.Replacement.Length - edit.Length;
        }

        return string.Create(length, (Original, edits), static (destination, state) =>
        {
            (string original, List<Edit> edits) = state;
            int copiedUpTo = 0;
            foreach (Edit edit in edits)
            {
                ReadOnlySpan<char> unchanged = original.AsSpan(copiedUpTo, edit.Start - copiedUpTo);
                unchanged.CopyTo(destination);
                destination = destination[unchanged.Length..];
                edit.Replacement.CopyTo(destination);
                destination = destination[edit.Replacement.Length..];
                copiedUpTo = edit.Start + edit.Length;
            }

            original.AsSpan(copiedUpTo).CopyTo(destination);
        });
    }

    /// <summary>Two spans overlap when they share a character; <paramref name="earlier"/> sorts before <paramref name="later"/>.
    /// An insertion overlaps a replacement only when it falls strictly inside it.</summary>
    private static bool Overlap(Edit earlier, Edit later) =>
        later.Start < earlier.Start + earlier.Length && (later.Length > 0 || later.Start > earlier.Start);

    private static ArgumentException OverlapError(Edit existing, Edit added) => new(
        $"The replacement of [{added.Start}, {added.Start + added.Length}) overlaps the one of [{existing.Start}, {existing.Start + existing.Length}) added before.");

    private readonly record struct Edit(int Start, int Length, string Replacement, int Sequence) : IComparable<Edit>
    {
        public int CompareTo(Edit other)
        {
            int byStart = Start.CompareTo(other.Start);
            if (byStart != 0)
            {
                return byStart;
            }

            // At one index, insertions come first so that they land before the text a replacement puts there.
            int byKind = (Length > 0).CompareTo(other.Length > 0);
            return byKind != 0 ? byKind : Sequence.CompareTo(other.Sequence);
        }
    }
}
