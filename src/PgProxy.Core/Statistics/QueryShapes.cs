using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using PgProxy.Sql;

namespace PgProxy.Core.Statistics;

/// <summary>
/// One statement's shape: its fingerprint and its text with the constants replaced by <c>$n</c>; <see cref="Text"/> is
/// the statement as sent, written only where the configuration asks for values (<c>query-log.parameters</c>).
/// </summary>
internal sealed record QueryShape(ulong Fingerprint, string FingerprintText, string NormalizedText, string Text)
{
    /// <summary>What a statement the parser rejects is counted as: the server will reject it too.</summary>
    public static QueryShape Unparsable { get; } = new(0, "0000000000000000", "(a statement PgProxy could not parse)", "");
}

/// <summary>
/// The statements of a query text, with their shapes, cached by the text's bytes as the client sent them: a repeated
/// query costs one lookup, with no decoding and no allocation. The cache holds at most <see cref="MaxEntries"/> texts
/// and starts again when full (texts with inline constants would otherwise fill it).
/// </summary>
internal sealed class QueryShapes
{
    public const int MaxEntries = 10_000;
    private const int MaxCachedTextBytes = 16 * 1024;

    private readonly ConcurrentDictionary<byte[], QueryShape[]> cache = new(ByteKeyComparer.Instance);
    private readonly ConcurrentDictionary<byte[], QueryShape[]>.AlternateLookup<ReadOnlySpan<byte>> bySpan;

    public QueryShapes() => bySpan = cache.GetAlternateLookup<ReadOnlySpan<byte>>();

    /// <summary>The statements of <paramref name="text"/> (a Query's or a Parse's text, without its terminator).</summary>
    public QueryShape[] Of(in ReadOnlySequence<byte> text, Encoding encoding)
    {
        if (text.IsSingleSegment)
        {
            return Of(text.FirstSpan, encoding);
        }

        byte[] copy = text.ToArray();
        return Of(copy, encoding);
    }

    public QueryShape[] Of(ReadOnlySpan<byte> text, Encoding encoding)
    {
        if (bySpan.TryGetValue(text, out QueryShape[]? shapes))
        {
            return shapes;
        }

        shapes = Compute(text, encoding);
        if (text.Length <= MaxCachedTextBytes)
        {
            if (cache.Count >= MaxEntries)
            {
                cache.Clear();
            }

            cache.TryAdd(text.ToArray(), shapes);
        }

        return shapes;
    }

    private static QueryShape[] Compute(ReadOnlySpan<byte> bytes, Encoding encoding)
    {
        string text;
        try
        {
            text = encoding.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return [QueryShape.Unparsable];
        }

        IReadOnlyList<SqlStatementSpan> spans;
        try
        {
            spans = PostgresParser.Split(text);
        }
        catch (SqlParseException)
        {
            return [QueryShape.Unparsable];
        }

        var shapes = new QueryShape[spans.Count];
        for (int i = 0; i < spans.Count; i++)
        {
            string statement = spans[i].TextOf(text);
            try
            {
                SqlFingerprint fingerprint = PostgresParser.Fingerprint(statement);
                shapes[i] = new QueryShape(fingerprint.Value, fingerprint.Text, PostgresParser.Normalize(statement), statement);
            }
            catch (SqlParseException)
            {
                shapes[i] = QueryShape.Unparsable;
            }
        }

        return shapes;
    }
}
