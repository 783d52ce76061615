using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Unicode;

namespace PgProxy.Core.Masks;

/// <summary>
/// The mask functions over a value's bytes, writing the masked value straight into the row: what <see cref="Mask.Apply"/>
/// makes of the decoded text, byte for byte, without building strings. ASCII in UTF-8 (the common case, and every byte
/// one character) is masked from its bytes; other text is decoded into a stack or pooled buffer, never a string.
/// </summary>
internal static class MaskedValueWriter
{
    private const int Utf8CodePage = 65001;

    /// <summary>Characters decoded on the stack at most; a longer value rents its buffer.</summary>
    private const int StackChars = 256;

    private const byte Star = (byte)'*';
    private const string Stars = "***";

    /// <summary>
    /// True when each byte is one character and one text element: ASCII in UTF-8 without CR (CR LF is one text element).
    /// No other ASCII character joins its neighbour in a grapheme cluster.
    /// </summary>
    internal static bool IsOneElementPerByte(ReadOnlySpan<byte> value, Encoding encoding) =>
        encoding.CodePage == Utf8CodePage && !value.ContainsAnyInRange((byte)0x80, (byte)0xFF) && !value.Contains((byte)'\r');

    /// <summary><see cref="Mask.KeepLast"/> of the value's text.</summary>
    /// <exception cref="DecoderFallbackException">The bytes are not text in <paramref name="encoding"/>.</exception>
    public static void KeepLast(ReadOnlySpan<byte> value, int kept, Encoding encoding, MaskedRowBuffer output)
    {
        if (IsOneElementPerByte(value, encoding))
        {
            int count = value.Length;
            if (count <= kept || kept == 0)
            {
                output.WriteRepeated(Star, count);
                return;
            }

            output.WriteRepeated(Star, count - kept);
            output.Write(value[(count - kept)..]);
            return;
        }

        char[]? rented = null;
        int max = encoding.GetMaxCharCount(value.Length);
        Span<char> chars = max <= StackChars ? stackalloc char[StackChars] : (rented = ArrayPool<char>.Shared.Rent(max));
        try
        {
            KeepLast(chars[..encoding.GetChars(value, chars)], kept, encoding, output);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
    }

    /// <summary><see cref="Mask.MaskEmail"/> of the value's text.</summary>
    /// <exception cref="DecoderFallbackException">The bytes are not text in <paramref name="encoding"/>.</exception>
    public static void Email(ReadOnlySpan<byte> value, Encoding encoding, MaskedRowBuffer output)
    {
        if (IsOneElementPerByte(value, encoding))
        {
            // '@' is one byte in UTF-8 and never part of another character's bytes.
            int atByte = value.LastIndexOf((byte)'@');
            if (atByte <= 0)
            {
                output.WriteText(Stars, encoding);
                return;
            }

            if (atByte > 1)
            {
                output.WriteByte(value[0]);
            }

            output.WriteText(Stars, encoding);
            output.Write(value[atByte..]);
            return;
        }

        char[]? rented = null;
        int max = encoding.GetMaxCharCount(value.Length);
        Span<char> chars = max <= StackChars ? stackalloc char[StackChars] : (rented = ArrayPool<char>.Shared.Rent(max));
        try
        {
            Email(chars[..encoding.GetChars(value, chars)], encoding, output);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
    }

    /// <summary>The lowercase hex SHA-256 of the UTF-8 bytes of the value's text.</summary>
    /// <exception cref="DecoderFallbackException">The bytes are not text in <paramref name="encoding"/>.</exception>
    public static void Hash(ReadOnlySpan<byte> value, Encoding encoding, MaskedRowBuffer output)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        if (encoding.CodePage == Utf8CodePage)
        {
            // Valid UTF-8 decodes and encodes back to the same bytes: they are what the text's hash is of.
            if (!Utf8.IsValid(value))
            {
                throw new DecoderFallbackException("the value is not valid UTF-8");
            }

            SHA256.HashData(value, hash);
        }
        else
        {
            HashOfText(value, encoding, hash);
        }

        Span<char> hex = stackalloc char[SHA256.HashSizeInBytes * 2];
        Convert.TryToHexStringLower(hash, hex, out _);
        output.WriteText(hex, encoding);
    }

    /// <summary>Every text element but the last <paramref name="kept"/> becomes '*'; a value of no more than that is masked whole.</summary>
    private static void KeepLast(ReadOnlySpan<char> value, int kept, Encoding encoding, MaskedRowBuffer output)
    {
        int count = 0;
        for (ReadOnlySpan<char> rest = value; !rest.IsEmpty; rest = rest[StringInfo.GetNextTextElementLength(rest)..])
        {
            count++;
        }

        if (count <= kept || kept == 0)
        {
            WriteStars(count, encoding, output);
            return;
        }

        int keepFrom = 0;
        for (int element = 0; element < count - kept; element++)
        {
            keepFrom += StringInfo.GetNextTextElementLength(value[keepFrom..]);
        }

        WriteStars(count - kept, encoding, output);
        output.WriteText(value[keepFrom..], encoding);
    }

    private static void Email(ReadOnlySpan<char> value, Encoding encoding, MaskedRowBuffer output)
    {
        int at = value.LastIndexOf('@');
        if (at <= 0)
        {
            output.WriteText(Stars, encoding);
            return;
        }

        // One text element, not one UTF-16 unit: a name starting with an emoji or a combining sequence stays valid text.
        int first = StringInfo.GetNextTextElementLength(value);
        if (first < at)
        {
            output.WriteText(value[..first], encoding);
        }

        output.WriteText(Stars, encoding);
        output.WriteText(value[at..], encoding);
    }

    private static void HashOfText(ReadOnlySpan<byte> value, Encoding encoding, Span<byte> hash)
    {
        char[] chars = ArrayPool<char>.Shared.Rent(encoding.GetMaxCharCount(value.Length));
        byte[]? utf8 = null;
        try
        {
            ReadOnlySpan<char> text = chars.AsSpan(0, encoding.GetChars(value, chars));
            utf8 = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetByteCount(text));
            SHA256.HashData(utf8.AsSpan(0, Encoding.UTF8.GetBytes(text, utf8)), hash);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
            if (utf8 is not null)
            {
                ArrayPool<byte>.Shared.Return(utf8);
            }
        }
    }

    /// <summary><paramref name="count"/> '*' in the encoding: one byte each in UTF-8 and every ASCII-compatible encoding.</summary>
    private static void WriteStars(int count, Encoding encoding, MaskedRowBuffer output)
    {
        Span<byte> star = stackalloc byte[8];
        int size = encoding.GetBytes("*", star);
        if (size == 1)
        {
            output.WriteRepeated(star[0], count);
            return;
        }

        for (int i = 0; i < count; i++)
        {
            output.Write(star[..size]);
        }
    }
}
