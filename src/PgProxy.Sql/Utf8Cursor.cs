namespace PgProxy.Sql;

/// <summary>
/// Converts a rising sequence of UTF-8 byte offsets into string indexes in one pass over the text, so converting every
/// token of a query costs O(length) rather than O(length) per token. Asking for an offset behind the last one starts
/// over from the beginning (correct, only slower).
/// </summary>
internal struct Utf8Cursor
{
    private readonly string text;
    private readonly bool ascii;
    private int charIndex;
    private int byteOffset;

    public Utf8Cursor(string text, bool ascii)
    {
        this.text = text;
        this.ascii = ascii;
    }

    /// <summary>The string index of the character that starts at UTF-8 byte <paramref name="targetByteOffset"/>.</summary>
    public int ToCharIndex(int targetByteOffset)
    {
        if (ascii || targetByteOffset <= 0)
        {
            return Math.Max(targetByteOffset, 0);
        }

        if (targetByteOffset < byteOffset)
        {
            charIndex = 0;
            byteOffset = 0;
        }

        while (byteOffset < targetByteOffset && charIndex < text.Length)
        {
            char c = text[charIndex];
            if (char.IsHighSurrogate(c) && charIndex + 1 < text.Length && char.IsLowSurrogate(text[charIndex + 1]))
            {
                byteOffset += 4;
                charIndex += 2;
            }
            else
            {
                // A lone surrogate is encoded as U+FFFD (3 bytes), the same as Encoding.UTF8 does for the native call.
                byteOffset += c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
                charIndex++;
            }
        }

        return charIndex;
    }
}
