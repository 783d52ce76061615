using PgProxy.Abstractions;
using PgProxy.Core.Masks;
using PgProxy.Core.Tests.Rules;

namespace PgProxy.Core.Tests.Masks;

/// <summary>
/// Reading a database's catalog for the masks, against a fake server that answers the reader's metadata queries: which
/// columns are masked, which types a function cannot keep, and how view columns trace to their sources.
/// </summary>
public sealed class MaskCatalogReaderTests
{
    private static readonly MaskSet Masks = MaskSets.Build("""
          - {name: emails, columns: [public.customers.email], with: email}
          - {name: ids, columns: [public.customers.id], with: hash}
          - {name: ssn, columns: ['*.ssn']}

    """);

    // oid, schema, name, relkind
    private static readonly string?[][] Relations =
    [
        ["100", "public", "customers", "r"],
        ["101", "hr", "people", "r"],
        ["200", "public", "contacts", "v"],
        ["201", "public", "shouting", "v"],
        ["202", "public", "both", "v"],
        ["300", "public", "contacts_again", "v"],
        ["400", "public", "unrelated", "r"],
    ];

    // attrelid, attnum, attname, typcategory, type
    private static readonly string?[][] MaskedColumns =
    [
        ["100", "2", "email", "S", "text"],
        ["100", "1", "id", "N", "integer"],
        ["101", "3", "ssn", "S", "character varying(11)"],
    ];

    // Views by the relations they depend on: oid, attnum, attname, typcategory, type, definition (on attnum 1).
    private static readonly Dictionary<string, string?[][]> ViewsOn = new()
    {
        ["100,101"] =
        [
            ["200", "1", "contact", "S", "text", " SELECT c.email AS contact,\n    c.name\n   FROM customers c;"],
            ["200", "2", "name", "S", "text", null],
            ["201", "1", "loud", "S", "text", " SELECT upper(customers.email) AS loud FROM customers;"],
            ["202", "1", "value", "S", "text", " SELECT customers.email AS value FROM customers UNION SELECT people.name FROM hr.people;"],
        ],
        ["200,201,202"] =
        [
            ["300", "1", "contact", "S", "text", " SELECT contacts.contact FROM contacts;"],
        ],
    };

    private static async Task<(MaskCatalog Catalog, ListLogger Log, List<string> Queries)> ReadAsync()
    {
        var log = new ListLogger();
        var queries = new List<string>();
        MaskCatalog catalog = await MaskCatalogReader.ReadAsync(Masks.Masks, (sql, _) =>
        {
            queries.Add(sql);
            string?[][] rows = sql switch
            {
                _ when sql.Contains("c.relkind NOT IN", StringComparison.Ordinal) => Relations,
                _ when sql.Contains("a.attname IN (", StringComparison.Ordinal) => MaskedColumns,
                _ => ViewsOn.GetValueOrDefault(sql[(sql.IndexOf("'{", StringComparison.Ordinal) + 2)..sql.IndexOf("}'", StringComparison.Ordinal)]) ?? [],
            };
            return Task.FromResult(new UpstreamQueryResult(["a"], [.. rows]));
        }, log, sessionId: 3, CancellationToken.None);
        return (catalog, log, queries);
    }

    [Fact]
    public async Task Masked_columns_are_found_by_schema_table_and_name_and_the_column_names_are_quoted()
    {
        (MaskCatalog catalog, _, List<string> queries) = await ReadAsync();

        Assert.Equal("emails", catalog.Relation(100)!.Columns[2].Mask.Name);
        Assert.Equal("ssn", catalog.Relation(101)!.Columns[3].Mask.Name);
        Assert.Null(catalog.Relation(101)!.Columns[3].Refusal);
        Assert.Empty(catalog.Relation(400)!.Columns);
        Assert.Null(catalog.Relation(999));
        Assert.Contains("a.attname IN ('email', 'id', 'ssn')", queries[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_function_that_cannot_keep_a_column_s_type_is_a_configuration_error_naming_the_mask_and_line()
    {
        (MaskCatalog catalog, ListLogger log, _) = await ReadAsync();

        ColumnVerdict verdict = catalog.Relation(100)!.Columns[1];
        Assert.True(verdict.Refuses);
        Assert.Contains("cannot keep the type integer of public.customers.id (a configuration error at line 7)", verdict.Refusal, StringComparison.Ordinal);
        Assert.Contains(log.Entries, entry => entry.Level == Microsoft.Extensions.Logging.LogLevel.Error
            && entry.Message == "Configuration error: mask ids (line 7): its function hash cannot keep the type integer of public.customers.id in binary format; results holding that column are refused");
    }

    [Fact]
    public async Task View_columns_trace_to_their_sources_through_aliases_unions_and_views_on_views()
    {
        (MaskCatalog catalog, _, _) = await ReadAsync();

        ColumnVerdict contact = catalog.Relation(200)!.Columns[1];
        Assert.Equal(("contact", "emails", false), (contact.Column, contact.Mask.Name, contact.Refuses));
        Assert.False(catalog.Relation(200)!.Columns.ContainsKey(2));
        Assert.True(catalog.Relation(201)!.Columns[1].Refuses);
        Assert.Contains("an expression over a masked column", catalog.Relation(201)!.Columns[1].Refusal, StringComparison.Ordinal);
        Assert.Equal("emails", catalog.Relation(202)!.Columns[1].Mask.Name);
        Assert.False(catalog.Relation(202)!.Columns[1].Refuses);
        Assert.Equal("emails", catalog.Relation(300)!.Columns[1].Mask.Name);
        Assert.Equal([("contact", "emails")], catalog.MaskedColumns(null, "contacts_again").Select(column => (column.Column, column.Mask.Name)));
    }
}
