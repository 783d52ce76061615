using System.Buffers;
using System.Text;

namespace PgProxy.Protocol.Backend;

/// <summary>
/// Writes a whole result set of text values, as a query answered by PgProxy itself returns it: RowDescription, one
/// DataRow per row, CommandComplete. ReadyForQuery is left to the caller, who knows the transaction status.
/// </summary>
public static class ResultSetWriter
{
    /// <summary>Writes columns of type text named <paramref name="columnNames"/>, then <paramref name="rows"/> (null for SQL NULL), then "SELECT n".</summary>
    /// <exception cref="ArgumentException">A row has not one value per column; the rows before it are already written, so the output must be discarded.</exception>
    public static void WriteText(IBufferWriter<byte> output, Encoding encoding, IReadOnlyList<string> columnNames, IEnumerable<IReadOnlyList<string?>> rows)
    {
        ArgumentNullException.ThrowIfNull(columnNames);
        ArgumentNullException.ThrowIfNull(rows);
        var fields = new FieldDescription[columnNames.Count];
        for (int i = 0; i < fields.Length; i++)
        {
            fields[i] = FieldDescription.Text(columnNames[i]);
        }

        RowDescriptionMessage.Write(output, encoding, fields);
        long count = 0;
        foreach (IReadOnlyList<string?> row in rows)
        {
            if (row.Count != fields.Length)
            {
                throw new ArgumentException($"row {count} has {row.Count} values for {fields.Length} columns", nameof(rows));
            }

            DataRowMessage.WriteText(output, encoding, row);
            count++;
        }

        CommandCompleteMessage.Write(output, encoding, CommandCompleteMessage.SelectTag(count));
    }
}
