using System.Text;

namespace PgProxy.Protocol;

/// <summary>Maps PostgreSQL's client_encoding names to .NET encodings, so SQL text round-trips byte for byte.</summary>
public static class PostgresEncodings
{
    private static readonly Lazy<bool> Registered = new(() =>
    {
        Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);
        return true;
    });

    /// <summary>UTF-8 that throws on invalid bytes instead of replacing them, so a text that cannot round-trip is never rewritten.</summary>
    public static Encoding Utf8 { get; } = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The encoding for a client_encoding value; null when PgProxy cannot decode it (text is then left untouched).</summary>
    public static Encoding? Find(string? name)
    {
        _ = Registered.Value;
        string normalized = (name ?? "UTF8").Replace("_", string.Empty, StringComparison.Ordinal).Replace("-", string.Empty, StringComparison.Ordinal).ToUpperInvariant();
        int codePage = normalized switch
        {
            "UTF8" or "UNICODE" => 65001,

            // Bytes of unknown meaning: Latin-1 maps each byte to one char and back, so nothing changes by accident.
            "SQLASCII" or "LATIN1" or "ISO88591" => 28591,
            "LATIN2" or "ISO88592" => 28592,
            "LATIN9" or "ISO885915" => 28605,
            "WIN1250" => 1250,
            "WIN1251" => 1251,
            "WIN1252" => 1252,
            "WIN1253" => 1253,
            "WIN1254" => 1254,
            "WIN1255" => 1255,
            "WIN1256" => 1256,
            "WIN1257" => 1257,
            "WIN1258" => 1258,
            "WIN866" => 866,
            "WIN874" => 874,
            "KOI8R" => 20866,
            "KOI8U" => 21866,
            "SJIS" or "SHIFTJIS" => 932,
            "GBK" or "WIN936" => 936,
            "UHC" or "WIN949" => 949,
            "BIG5" or "WIN950" => 950,
            "EUCJP" => 20932,
            "EUCKR" => 51949,
            "GB18030" => 54936,
            _ => 0,
        };
        return codePage switch
        {
            0 => null,
            65001 => Utf8,
            _ => Encoding.GetEncoding(codePage, EncoderFallback.ExceptionFallback, DecoderFallback.ExceptionFallback),
        };
    }
}
