namespace PgProxy.Protocol.Framing;

/// <summary>Sizes and sentinel values of the protocol's primitive types (Int16, Int32, String), so no message spells them as bare numbers.</summary>
public static class WireFormat
{
    /// <summary>Bytes of an Int16 (counts, column numbers, format codes).</summary>
    public const int Int16Size = 2;

    /// <summary>Bytes of an Int32 (lengths, OIDs, process ids).</summary>
    public const int Int32Size = 4;

    /// <summary>Bytes of the NUL that ends every String.</summary>
    public const int TerminatorSize = 1;

    /// <summary>The value length that stands for SQL NULL in DataRow and Bind.</summary>
    public const int NullValueLength = -1;

    /// <summary>Format code of values sent as text.</summary>
    public const short TextFormat = 0;

    /// <summary>Format code of values sent in binary.</summary>
    public const short BinaryFormat = 1;

    /// <summary>Bytes of <paramref name="value"/> as a NUL-terminated String in <paramref name="encoding"/>.</summary>
    public static int CStringSize(string value, System.Text.Encoding encoding)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(encoding);
        return checked(encoding.GetByteCount(value) + TerminatorSize);
    }
}
