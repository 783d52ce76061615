namespace PgProxy.Sql;

/// <summary>
/// Reads libpg_query's ScanResult message (pg_query.proto) straight into <see cref="SqlToken"/>s. The generated
/// <see cref="PgQuery.ScanResult"/> would allocate one object per token only to be copied and dropped; this reads the
/// four fields of each ScanToken from the wire format and skips anything else, as protobuf readers must.
/// </summary>
internal static class ScanResultDecoder
{
    private const int ScanResultTokensField = 2;
    private const int ScanTokenStartField = 1;
    private const int ScanTokenEndField = 2;
    private const int ScanTokenTokenField = 4;
    private const int ScanTokenKeywordKindField = 5;

    private const int WireVarint = 0;
    private const int WireFixed64 = 1;
    private const int WireLengthDelimited = 2;
    private const int WireFixed32 = 5;

    /// <summary>Decodes the tokens, converting byte offsets to string indexes of <paramref name="text"/> and leaving comments out.</summary>
    public static SqlToken[] Decode(ReadOnlySpan<byte> message, string text, bool ascii)
    {
        var tokens = new List<SqlToken>(Math.Max(message.Length / 8, 4));
        var cursor = new Utf8Cursor(text, ascii);
        int position = 0;
        while (position < message.Length)
        {
            ulong tag = ReadVarint(message, ref position);
            if ((int)(tag >> 3) == ScanResultTokensField && (int)(tag & 7) == WireLengthDelimited)
            {
                int length = checked((int)ReadVarint(message, ref position));
                ReadOnlySpan<byte> tokenMessage = message.Slice(position, length);
                position += length;
                SqlToken token = DecodeToken(tokenMessage, ref cursor);
                // pg_query_scan reports comments as SQL_COMMENT and C_COMMENT tokens; PgProxy treats them as the
                // server does, as whitespace, so that neighbouring tokens are neighbours in the list.
                if (token.Kind is not (PgQuery.Token.SqlComment or PgQuery.Token.CComment))
                {
                    tokens.Add(token);
                }
            }
            else
            {
                Skip(message, ref position, (int)(tag & 7));
            }
        }

        return tokens.ToArray();
    }

    /// <summary>
    /// Counts the tokens that can open a level of nesting in the parse tree: everything but names, constants,
    /// parameters, commas, dots, semicolons and comments. Each level of the tree needs at least one of them (an
    /// operator, a parenthesis, a keyword, a cast), so the count bounds the depth of the tree.
    /// </summary>
    public static int CountNestingTokens(ReadOnlySpan<byte> message)
    {
        int count = 0;
        int position = 0;
        while (position < message.Length)
        {
            ulong tag = ReadVarint(message, ref position);
            if ((int)(tag >> 3) != ScanResultTokensField || (int)(tag & 7) != WireLengthDelimited)
            {
                Skip(message, ref position, (int)(tag & 7));
                continue;
            }

            int length = checked((int)ReadVarint(message, ref position));
            ReadOnlySpan<byte> token = message.Slice(position, length);
            position += length;
            int inner = 0;
            var kind = PgQuery.Token.Nul;
            while (inner < token.Length)
            {
                ulong innerTag = ReadVarint(token, ref inner);
                if ((int)(innerTag >> 3) == ScanTokenTokenField && (int)(innerTag & 7) == WireVarint)
                {
                    kind = (PgQuery.Token)unchecked((int)ReadVarint(token, ref inner));
                }
                else
                {
                    Skip(token, ref inner, (int)(innerTag & 7));
                }
            }

            if (kind is not (PgQuery.Token.Ident or PgQuery.Token.Uident or PgQuery.Token.Iconst or PgQuery.Token.Fconst
                or PgQuery.Token.Sconst or PgQuery.Token.Usconst or PgQuery.Token.Bconst or PgQuery.Token.Xconst
                or PgQuery.Token.Param or PgQuery.Token.Ascii44 or PgQuery.Token.Ascii46 or PgQuery.Token.Ascii59
                or PgQuery.Token.SqlComment or PgQuery.Token.CComment))
            {
                count++;
            }
        }

        return count;
    }

    private static SqlToken DecodeToken(ReadOnlySpan<byte> message, ref Utf8Cursor cursor)
    {
        int start = 0;
        int end = 0;
        int kind = 0;
        int keywordKind = 0;
        int position = 0;
        while (position < message.Length)
        {
            ulong tag = ReadVarint(message, ref position);
            int wireType = (int)(tag & 7);
            if (wireType != WireVarint)
            {
                Skip(message, ref position, wireType);
                continue;
            }

            // int32 and enum fields: the low 32 bits of the varint (negative values are sign-extended to 64).
            int value = unchecked((int)ReadVarint(message, ref position));
            switch ((int)(tag >> 3))
            {
                case ScanTokenStartField:
                    start = value;
                    break;
                case ScanTokenEndField:
                    end = value;
                    break;
                case ScanTokenTokenField:
                    kind = value;
                    break;
                case ScanTokenKeywordKindField:
                    keywordKind = value;
                    break;
            }
        }

        int startIndex = cursor.ToCharIndex(start);
        int endIndex = cursor.ToCharIndex(end);
        return new SqlToken(startIndex, endIndex, (PgQuery.Token)kind, (PgQuery.KeywordKind)keywordKind);
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> message, ref int position)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = message[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }

        throw new InvalidDataException("Malformed varint in libpg_query's scan result.");
    }

    private static void Skip(ReadOnlySpan<byte> message, ref int position, int wireType)
    {
        switch (wireType)
        {
            case WireVarint:
                ReadVarint(message, ref position);
                break;
            case WireFixed64:
                position += 8;
                break;
            case WireLengthDelimited:
                position += checked((int)ReadVarint(message, ref position));
                break;
            case WireFixed32:
                position += 4;
                break;
            default:
                throw new InvalidDataException($"Unexpected wire type {wireType} in libpg_query's scan result.");
        }
    }
}
