using System.Buffers;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Backend;

/// <summary>One field (result column) of a RowDescription, as the server describes it.</summary>
/// <param name="Name">The column name.</param>
/// <param name="TableOid">The OID of the table the column comes from, or 0.</param>
/// <param name="ColumnNumber">The column's attribute number in that table, or 0.</param>
/// <param name="TypeOid">The OID of the column's data type.</param>
/// <param name="TypeSize">The type's size (pg_type.typlen); negative for variable-width types.</param>
/// <param name="TypeModifier">The type modifier (pg_attribute.atttypmod); -1 when none.</param>
/// <param name="FormatCode">0 for text, 1 for binary (0 in a Describe's answer, where it is not yet known).</param>
public readonly record struct FieldDescription(string Name, uint TableOid, short ColumnNumber, uint TypeOid, short TypeSize, int TypeModifier, short FormatCode)
{
    /// <summary>The OID of the type <c>text</c>.</summary>
    public const uint TextTypeOid = 25;

    /// <summary>Bytes of a field after its name: table OID, column number, type OID, size, modifier and format.</summary>
    public const int FixedSize = WireFormat.Int32Size + WireFormat.Int16Size + WireFormat.Int32Size + WireFormat.Int16Size + WireFormat.Int32Size + WireFormat.Int16Size;

    /// <summary>A column of type text in text format, belonging to no table: what a result computed by PgProxy itself sends.</summary>
    public static FieldDescription Text(string name) => new(name, 0, 0, TextTypeOid, -1, -1, WireFormat.TextFormat);
}

/// <summary>Reads and writes RowDescription ('T'): an Int16 field count, then per field a name and <see cref="FieldDescription.FixedSize"/> bytes.</summary>
public static class RowDescriptionMessage
{
    /// <summary>Decodes a RowDescription body; false when it is truncated, has bytes left over or a name is not valid in <paramref name="encoding"/>.</summary>
    public static bool TryRead(in ReadOnlySequence<byte> body, Encoding encoding, out FieldDescription[] fields)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        fields = [];
        var reader = new SequenceReader<byte>(body);

        // Each field takes at least its NUL and its fixed part: a count the body cannot hold is refused before allocating.
        if (!reader.TryReadBigEndian(out short count) || count < 0 || reader.Remaining < count * (WireFormat.TerminatorSize + (long)FieldDescription.FixedSize))
        {
            return false;
        }

        var result = new FieldDescription[count];
        for (int i = 0; i < count; i++)
        {
            if (!BodyReading.TryReadCString(ref reader, encoding, out string name)
                || !reader.TryReadBigEndian(out int table)
                || !reader.TryReadBigEndian(out short column)
                || !reader.TryReadBigEndian(out int type)
                || !reader.TryReadBigEndian(out short size)
                || !reader.TryReadBigEndian(out int modifier)
                || !reader.TryReadBigEndian(out short format))
            {
                return false;
            }

            result[i] = new FieldDescription(name, (uint)table, column, (uint)type, size, modifier, format);
        }

        if (!reader.End)
        {
            return false;
        }

        fields = result;
        return true;
    }

    /// <summary>Writes a whole RowDescription.</summary>
    public static void Write(IBufferWriter<byte> output, Encoding encoding, ReadOnlySpan<FieldDescription> fields)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        int bodyLength = WireFormat.Int16Size;
        foreach (FieldDescription field in fields)
        {
            bodyLength = checked(bodyLength + WireFormat.CStringSize(field.Name, encoding) + FieldDescription.FixedSize);
        }

        var writer = MessageWriter.Start(output, BackendMessageCode.RowDescription, bodyLength);
        writer.WriteInt16(checked((short)fields.Length));
        foreach (FieldDescription field in fields)
        {
            writer.WriteCString(field.Name, encoding);
            writer.WriteUInt32(field.TableOid);
            writer.WriteInt16(field.ColumnNumber);
            writer.WriteUInt32(field.TypeOid);
            writer.WriteInt16(field.TypeSize);
            writer.WriteInt32(field.TypeModifier);
            writer.WriteInt16(field.FormatCode);
        }

        writer.Complete();
    }
}
