using System.Text;

namespace PgProxy.Sql;

/// <summary>
/// Converts libpg_query's byte offsets (into the UTF-8 encoding of a query) to indexes into the query string, and back.
/// For an all-ASCII query the two are equal and nothing is computed.
/// </summary>
public sealed class Utf8Offsets
{
    private readonly string text;
    private readonly bool ascii;

    public Utf8Offsets(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        this.text = text;
        ascii = Ascii.IsValid(text);
    }

    /// <summary>The string index of the character that starts at UTF-8 byte <paramref name="byteOffset"/>.</summary>
    public int ToCharIndex(int byteOffset)
    {
        if (ascii || byteOffset <= 0)
        {
            return byteOffset;
        }

        int bytes = 0;
        for (int index = 0; index < text.Length; index++)
        {
            if (bytes >= byteOffset)
            {
                return index;
            }

            char c = text[index];
            if (char.IsHighSurrogate(c) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]))
            {
                bytes += 4;
                index++;
            }
            else
            {
                bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
            }
        }

        return text.Length;
    }

    /// <summary>The UTF-8 byte offset of string index <paramref name="charIndex"/>.</summary>
    public int ToByteOffset(int charIndex) => ascii ? charIndex : Encoding.UTF8.GetByteCount(text.AsSpan(0, Math.Clamp(charIndex, 0, text.Length)));
}
