using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using PgProxy.Protocol.Framing;
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
/// The statements of a query text, with their shapes, cached by the text's skeleton: its bytes as the client sent them
/// with the numbers and the insides of string constants left out. Queries that differ only in their constants
/// (<c>WHERE aid = 1</c>, <c>WHERE aid = 2</c>) have one skeleton and one fingerprint, so a tool that inlines its values
/// costs one pass over the bytes and one lookup per query, with no decoding and no allocation, instead of a parse. The
/// cache holds at most <see cref="MaxEntries"/> skeletons and starts again when full.
/// </summary>
internal sealed class QueryShapes
{
    public const int MaxEntries = 10_000;
    private const int MaxCachedTextBytes = 16 * 1024;

    private readonly ConcurrentDictionary<byte[], QueryShape[]> cache = new(ByteKeyComparer.Instance);
    private readonly ConcurrentDictionary<byte[], QueryShape[]>.AlternateLookup<ReadOnlySpan<byte>> bySpan;

    public QueryShapes() => bySpan = cache.GetAlternateLookup<ReadOnlySpan<byte>>();

    /// <summary>
    /// Statements longer than this are not parsed for statistics or the query log: they count as unparsable. Parsing
    /// one (libpg_query's tree, its normalized text, the UTF-16 copies) took the proxy from 58 MB to a 509 MB peak for
    /// a 50 MB Query, 9 times the message; the default limits.max-intercepted-size is the same 16 MB.
    /// </summary>
    public const int MaxParsedTextBytes = 16 * 1024 * 1024;

    private static readonly QueryShape[] TooLong = [QueryShape.Unparsable];

    /// <summary>The statements of <paramref name="text"/> (a Query's or a Parse's text, without its terminator).</summary>
    public QueryShape[] Of(in ReadOnlySequence<byte> text, Encoding encoding)
    {
        if (text.Length > MaxParsedTextBytes)
        {
            return TooLong;
        }

        if (text.IsSingleSegment)
        {
            return Of(text.FirstSpan, encoding);
        }

        if (text.Length > MaxCachedTextBytes)
        {
            // Not cached: decoded from its segments in place, without a contiguous copy of a large message first.
            string decoded;
            try
            {
                decoded = SequenceBytes.Text(text, encoding);
            }
            catch (DecoderFallbackException)
            {
                return [QueryShape.Unparsable];
            }

            return Compute(decoded);
        }

        byte[] copy = text.ToArray();
        return Of(copy, encoding);
    }

    public QueryShape[] Of(ReadOnlySpan<byte> text, Encoding encoding)
    {
        if (text.Length > MaxParsedTextBytes)
        {
            return TooLong;
        }

        if (text.Length > MaxCachedTextBytes)
        {
            return Compute(text, encoding);
        }

        Span<byte> skeleton = stackalloc byte[text.Length];
        skeleton = skeleton[..Skeleton(text, skeleton)];
        if (bySpan.TryGetValue(skeleton, out QueryShape[]? shapes))
        {
            return shapes;
        }

        shapes = Compute(text, encoding);
        if (cache.Count >= MaxEntries)
        {
            cache.Clear();
        }

        cache.TryAdd(skeleton.ToArray(), shapes);
        return shapes;
    }

    /// <summary>
    /// Writes <paramref name="text"/> without its constants: a number (not part of a name or a <c>$n</c>) becomes
    /// <c>0</c>, a string constant becomes <c>''</c>; quoted identifiers and comments are copied as they are, so a
    /// quote inside them starts nothing. Returns the length written, never more than the text's.
    /// </summary>
    internal static int Skeleton(ReadOnlySpan<byte> text, Span<byte> into)
    {
        int written = 0;
        int i = 0;
        while (i < text.Length)
        {
            byte b = text[i];
            if (b == (byte)'\'')
            {
                // A string constant; '' inside it is a quote, and in E'' a backslash escapes the next byte.
                bool escapes = i > 0 && (text[i - 1] | 0x20) == (byte)'e' && (i < 2 || !IsNamePart(text[i - 2]));
                into[written++] = b;
                i++;
                while (i < text.Length)
                {
                    if (escapes && text[i] == (byte)'\\')
                    {
                        i += 2;
                    }
                    else if (text[i] == (byte)'\'' && i + 1 < text.Length && text[i + 1] == (byte)'\'')
                    {
                        i += 2;
                    }
                    else if (text[i++] == (byte)'\'')
                    {
                        break;
                    }
                }

                into[written++] = (byte)'\'';
                continue;
            }

            int copyEnd = b switch
            {
                (byte)'"' => End(text, i + 1, (byte)'"'),
                (byte)'-' when i + 1 < text.Length && text[i + 1] == (byte)'-' => End(text, i + 2, (byte)'\n'),
                (byte)'/' when i + 1 < text.Length && text[i + 1] == (byte)'*' => CommentEnd(text, i + 2),
                _ => -1,
            };
            if (copyEnd > 0)
            {
                text[i..copyEnd].CopyTo(into[written..]);
                written += copyEnd - i;
                i = copyEnd;
                continue;
            }

            if (char.IsAsciiDigit((char)b) && (written == 0 || !IsNamePart(into[written - 1])))
            {
                into[written++] = (byte)'0';
                while (i < text.Length && (char.IsAsciiDigit((char)text[i]) || text[i] == (byte)'.'))
                {
                    i++;
                }

                continue;
            }

            into[written++] = b;
            i++;
        }

        return written;
    }

    private static bool IsNamePart(byte b) => char.IsAsciiLetterOrDigit((char)b) || b is (byte)'_' or (byte)'$' || b >= 0x80;

    /// <summary>Just past the first <paramref name="close"/> from <paramref name="from"/>, or the end.</summary>
    private static int End(ReadOnlySpan<byte> text, int from, byte close)
    {
        int found = from < text.Length ? text[from..].IndexOf(close) : -1;
        return found < 0 ? text.Length : from + found + 1;
    }

    private static int CommentEnd(ReadOnlySpan<byte> text, int from)
    {
        int found = from < text.Length ? text[from..].IndexOf("*/"u8) : -1;
        return found < 0 ? text.Length : from + found + 2;
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

        return Compute(text);
    }

    private static QueryShape[] Compute(string text)
    {
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
