using PgProxy.Core.Masks;

namespace PgProxy.Core.Tests.Masks;

/// <summary>
/// The checks before a statement runs: computations over masked columns and COPY out of masked tables, from the parse,
/// with the configuration's names (as <c>pgproxy test-rules</c> runs them) and with a catalog (as sessions do).
/// </summary>
public sealed class MaskStatementCheckTests
{
    private static readonly MaskSet Masks = MaskSets.Build("""
          - {name: emails, columns: [public.customers.email], with: email}
          - {name: ssn, columns: ['*.ssn'], computed: pass}
          - {name: cards, columns: [customers.card], copy: pass, with: {keep-last: 4}}

    """);

    private static MaskRefusal? Static(string sql, bool[]? applies = null) =>
        MaskStatementCheck.Check(MaskStatementFacts.Of(sql), new ConfiguredMaskedRelations(Masks.Masks), applies ?? [true, true, true]);

    [Theory]
    [InlineData("SELECT upper(email) FROM customers")]
    [InlineData("SELECT email::text FROM public.customers")]
    [InlineData("SELECT email || '' AS e FROM customers")]
    [InlineData("SELECT c.id, lower(c.email) FROM customers c")]
    [InlineData("SELECT coalesce(email, 'none') FROM customers")]
    [InlineData("SELECT string_agg(email, ',') FROM customers")]
    [InlineData("SELECT CASE WHEN id > 0 THEN email END FROM customers")]
    [InlineData("SELECT upper(e) FROM (SELECT email AS e FROM customers) s")]
    [InlineData("WITH x AS (SELECT email AS contact FROM customers) SELECT upper(contact) FROM x")]
    [InlineData("SELECT upper(a) FROM (SELECT email FROM customers) s(a)")]
    [InlineData("SELECT row_to_json(c) FROM customers c")]
    [InlineData("SELECT c FROM customers c")]
    [InlineData("SELECT to_jsonb(c.*) FROM customers c")]
    [InlineData("INSERT INTO copies SELECT email FROM customers")]
    [InlineData("CREATE TABLE copies AS SELECT email FROM customers")]
    [InlineData("SELECT email INTO copies FROM customers")]
    [InlineData("UPDATE notes SET body = c.email FROM customers c WHERE c.id = notes.id")]
    [InlineData("SELECT id FROM t WHERE x IN (SELECT upper(email) FROM customers)")]
    [InlineData("SELECT email FROM customers UNION SELECT 'x'")]
    [InlineData("SELECT 'x' EXCEPT SELECT c.email FROM customers c")]
    [InlineData("SELECT e FROM (SELECT email AS e FROM customers UNION ALL SELECT name FROM people) s")]
    [InlineData("SELECT * FROM (VALUES ((SELECT email FROM customers LIMIT 1))) v")]
    [InlineData("SELECT * FROM unnest(ARRAY(SELECT email FROM customers)) u")]
    [InlineData("SELECT email FROM customers FULL JOIN leads USING (email)")]
    [InlineData("SELECT * FROM customers NATURAL FULL JOIN leads")]
    public void A_computation_or_a_copy_into_a_table_is_refused_by_the_mask_of_its_column(string sql)
    {
        MaskRefusal refusal = Assert.IsType<MaskRefusal>(Static(sql));

        Assert.Equal("emails", refusal.Mask.Name);
        Assert.Contains("computes over", refusal.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("SELECT email FROM customers")]
    [InlineData("SELECT email AS e, card AS c FROM customers")]
    [InlineData("SELECT c.email FROM customers c WHERE upper(c.email) LIKE 'A%'")]
    [InlineData("SELECT e FROM (SELECT email AS e FROM customers) s")]
    [InlineData("SELECT id FROM orders WHERE customer_email IN (SELECT email FROM customers)")]
    [InlineData("UPDATE customers SET id = id RETURNING email")]
    [InlineData("SELECT email FROM customers JOIN leads USING (email)")]
    [InlineData("SELECT upper(email) FROM users")]
    [InlineData("SELECT upper(ssn) FROM people")]
    [InlineData("SELECT 'upper(email)' FROM customers")]
    [InlineData("CREATE VIEW v AS SELECT email FROM customers")]
    [InlineData("not sql at all")]
    public void A_plain_reference_a_filter_another_table_and_computed_pass_are_not_refused(string sql) => Assert.Null(Static(sql));

    [Fact]
    public void A_mask_that_does_not_apply_to_the_session_refuses_nothing()
    {
        Assert.Null(Static("SELECT upper(email) FROM customers", [false, true, true]));
        Assert.Equal("cards", Static("SELECT upper(card) FROM customers", [false, true, true])!.Value.Mask.Name);
    }

    [Theory]
    [InlineData("COPY customers TO STDOUT", "emails")]
    [InlineData("COPY public.customers (id) TO STDOUT", "emails")]
    [InlineData("COPY (SELECT id FROM customers) TO STDOUT", "emails")]
    [InlineData("COPY people TO '/tmp/people.csv'", "ssn")] // without a catalog, *.ssn may be any relation's, and a file is out of the mask's reach too
    [InlineData("COPY customers FROM STDIN", null)]
    public void Copy_out_of_a_masked_table_is_refused_unless_every_mask_on_it_passes_copies(string sql, string? mask)
    {
        MaskRefusal? refusal = Static(sql);

        Assert.Equal(mask, refusal?.Mask.Name);
        if (mask is not null)
        {
            Assert.Contains("COPY of", refusal!.Value.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void With_a_catalog_a_view_s_masked_columns_count_and_a_known_other_relation_is_not_suspected()
    {
        var customers = new CatalogRelation(16384, "public", "customers", 'r');
        customers.Columns[2] = new ColumnVerdict("email", Masks.Masks[0], null);
        var view = new CatalogRelation(16390, "public", "contacts", 'v');
        view.Columns[1] = new ColumnVerdict("contact", Masks.Masks[0], null);
        var users = new CatalogRelation(16400, "public", "users", 'r');
        var catalog = new MaskCatalog([customers, view, users]);
        bool[] all = [true, true, true];

        Assert.Equal("emails", MaskStatementCheck.Check(MaskStatementFacts.Of("SELECT lower(contact) FROM contacts"), catalog, all)?.Mask.Name);
        Assert.Null(MaskStatementCheck.Check(MaskStatementFacts.Of("SELECT contact FROM contacts"), catalog, all));
        Assert.Null(MaskStatementCheck.Check(MaskStatementFacts.Of("SELECT upper(u.email) FROM users u JOIN customers c USING (id)"), catalog, all));
        Assert.NotNull(MaskStatementCheck.Check(MaskStatementFacts.Of("SELECT upper(email) FROM users u JOIN customers c USING (id)"), catalog, all));
        Assert.False(catalog.ShouldLookFor(null, "users"));
        Assert.True(catalog.ShouldLookFor(null, "created_later"));
        Assert.False(catalog.ShouldLookFor(null, "created_later"));
    }
}
