using PgProxy.Plugins.TableauHll.Analysis;

namespace PgProxy.Plugins.Tests.TableauHll;

/// <summary>Column types as a test states them: "schema.table" (or "table" for a name without a schema) → columns, hll or not.</summary>
internal sealed class ColumnTypes : IColumnTypes
{
    private readonly Dictionary<RelationName, Dictionary<string, bool>> tables = [];

    public ColumnTypes Table(string? schema, string name, params (string Column, bool Hll)[] columns)
    {
        tables[new RelationName(schema, name)] = columns.ToDictionary(column => column.Column, column => column.Hll, StringComparer.Ordinal);
        return this;
    }

    public IReadOnlyDictionary<string, bool>? ColumnsOf(RelationName relation) => tables.GetValueOrDefault(relation);
}
