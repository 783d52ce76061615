using System.Buffers;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Backend;

/// <summary>
/// Writes a whole result set of text values, as a query answered by PgProxy itself returns it: RowDescription, one
/// DataRow per row, CommandComplete; or, for the extended protocol, the description and the rows apart. ReadyForQuery
/// is left to the caller, who knows the transaction status.
/// </summary>
public static class ResultSetWriter
{
    /// <summary>Writes columns of type text named <paramref name="columnNames"/>, then <paramref name="rows"/> (null for SQL NULL), then "SELECT n".</summary>
    /// <exception cref="ArgumentException">A row has not one value per column; the rows before it are already written, so the output must be discarded.</exception>
    public static void WriteText(IBufferWriter<byte> output, Encoding encoding, IReadOnlyList<string> columnNames, IEnumerable<IReadOnlyList<string?>> rows)
    {
        ArgumentNullException.ThrowIfNull(columnNames);
        WriteTextDescription(output, encoding, columnNames, []);
        WriteTextRows(output, encoding, columnNames.Count, rows);
    }

    /// <summary>
    /// Writes the RowDescription of text columns named <paramref name="columnNames"/> with the format codes a Bind asked
    /// for (none: all text; one: for every column; else one per column), as the answer to a Describe of a portal.
    /// A text value's bytes are the same in both formats, so the rows written by <see cref="WriteTextRows"/> fit either.
    /// </summary>
    /// <exception cref="ArgumentException">There are several format codes, but not one per column.</exception>
    public static void WriteTextDescription(IBufferWriter<byte> output, Encoding encoding, IReadOnlyList<string> columnNames, ReadOnlySpan<short> resultFormats)
    {
        ArgumentNullException.ThrowIfNull(columnNames);
        if (resultFormats.Length > 1 && resultFormats.Length != columnNames.Count)
        {
            throw new ArgumentException($"{resultFormats.Length} result format codes for {columnNames.Count} columns", nameof(resultFormats));
        }

        var fields = new FieldDescription[columnNames.Count];
        for (int i = 0; i < fields.Length; i++)
        {
            short format = resultFormats.Length switch
            {
                0 => WireFormat.TextFormat,
                1 => resultFormats[0],
                _ => resultFormats[i],
            };
            fields[i] = FieldDescription.Text(columnNames[i]) with { FormatCode = format };
        }

        RowDescriptionMessage.Write(output, encoding, fields);
    }

    /// <summary>
    /// Writes one DataRow per row of <paramref name="rows"/> (null for SQL NULL), then "SELECT n": the answer to an
    /// Execute, whose RowDescription came with the Describe before it.
    /// </summary>
    /// <exception cref="ArgumentException">A row has not <paramref name="columnCount"/> values; the rows before it are already written, so the output must be discarded.</exception>
    public static void WriteTextRows(IBufferWriter<byte> output, Encoding encoding, int columnCount, IEnumerable<IReadOnlyList<string?>> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        long count = 0;
        foreach (IReadOnlyList<string?> row in rows)
        {
            if (row.Count != columnCount)
            {
                throw new ArgumentException($"row {count} has {row.Count} values for {columnCount} columns", nameof(rows));
            }

            DataRowMessage.WriteText(output, encoding, row);
            count++;
        }

        CommandCompleteMessage.Write(output, encoding, CommandCompleteMessage.SelectTag(count));
    }
}
