using PgProxy.Core.Server;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Tests.Server;

/// <summary>
/// Pairing the client's requests with the server's responses so that each DataRow has its columns: requests are
/// recorded as the frontend forwards them (often a whole pipeline ahead), responses arrive in the server's order.
/// </summary>
public sealed class StatementTrackerTests
{
    private const short Text = 0;
    private const short Binary = 1;

    private readonly StatementTracker tracker = new();

    [Fact]
    public void A_statement_prepared_and_described_once_gives_its_columns_to_every_later_execution()
    {
        Prepare("s1", Columns("id", "name"));

        for (int execution = 0; execution < 10; execution++)
        {
            Send(Bind(string.Empty, "s1", Binary), Execute(string.Empty), Sync());
            tracker.OnBindComplete();
            Assert.Equal(["id", "name"], NamesOfRow());
            Assert.All(KnownColumnsOfRow(), column => Assert.Equal(Binary, column.FormatCode));
            tracker.OnCompletion();
            Assert.Null(tracker.ColumnsOfRow());
            tracker.OnReadyForQuery();
        }

        // The statement and the unnamed portal.
        Assert.Equal(2, tracker.Known);
    }

    [Fact]
    public void A_whole_pipeline_recorded_before_any_response_is_paired_in_order()
    {
        // Parse, Describe, Bind and Execute of the same statement, all sent before the description arrives.
        Send(Parse("s1"), DescribeStatement("s1"), Bind("p1", "s1"), Execute("p1"), Sync(), Query());

        tracker.OnParseComplete();
        Assert.Null(tracker.ColumnsOfRow());
        tracker.OnRowDescription(Columns("a"));
        tracker.OnBindComplete();
        Assert.Equal(["a"], NamesOfRow());
        tracker.OnCompletion();
        tracker.OnReadyForQuery();

        tracker.OnRowDescription(Columns("version"));
        Assert.Equal(["version"], NamesOfRow());
        tracker.OnCompletion();
        tracker.OnReadyForQuery();
        Assert.Null(tracker.ColumnsOfRow());
    }

    [Fact]
    public void A_new_unnamed_statement_replaces_the_description_of_the_old_one()
    {
        DescribeAndRun(string.Empty, Columns("old"));

        // Parsed again without a Describe: its rows are unknown, never the old statement's columns.
        Send(Parse(string.Empty), Bind(string.Empty, string.Empty), Execute(string.Empty), Sync());
        tracker.OnParseComplete();
        tracker.OnBindComplete();
        Assert.Null(tracker.ColumnsOfRow());
        tracker.OnCompletion();
        tracker.OnReadyForQuery();

        DescribeAndRun(string.Empty, Columns("x", "y"));
    }

    [Fact]
    public void A_portal_bound_from_a_named_statement_has_its_columns_with_the_formats_bind_asked_for()
    {
        Prepare("s1", Columns("a", "b", "c"));

        Send(Bind("p1", "s1", Text, Binary, Text), Execute("p1"), Execute("p1"), Sync());
        tracker.OnBindComplete();
        Assert.Equal(["a", "b", "c"], NamesOfRow());
        Assert.Equal([Text, Binary, Text], FormatsOfRow());

        // Executed with a row limit: suspended, then executed again.
        tracker.OnCompletion();
        Assert.Equal(["a", "b", "c"], NamesOfRow());
        tracker.OnCompletion();
        tracker.OnReadyForQuery();

        // The statement's own description keeps the server's text format.
        Send(Bind("p2", "s1"), Execute("p2"), Sync());
        tracker.OnBindComplete();
        Assert.Equal([Text, Text, Text], FormatsOfRow());
    }

    [Fact]
    public void A_portal_described_itself_has_the_columns_of_that_description()
    {
        Send(Parse(string.Empty), Bind(string.Empty, string.Empty), DescribePortal(string.Empty), Execute(string.Empty), Sync());
        tracker.OnParseComplete();
        tracker.OnBindComplete();
        Assert.Null(tracker.ColumnsOfRow());
        tracker.OnRowDescription(Columns("n").Select(column => column with { FormatCode = Binary }).ToArray());

        Assert.Equal(["n"], NamesOfRow());
        Assert.Equal([Binary], FormatsOfRow());
    }

    [Fact]
    public void A_portal_rebound_from_an_undescribed_statement_forgets_its_old_columns()
    {
        Send(Parse("s1"), DescribeStatement("s1"), Bind("p1", "s1"), Execute("p1"), Sync());
        tracker.OnParseComplete();
        tracker.OnRowDescription(Columns("a"));
        tracker.OnBindComplete();
        tracker.OnCompletion();
        tracker.OnReadyForQuery();

        Send(Parse("s2"), Bind("p1", "s2"), Execute("p1"), Sync());
        tracker.OnParseComplete();
        tracker.OnBindComplete();

        Assert.Null(tracker.ColumnsOfRow());
    }

    [Fact]
    public void A_statement_described_as_no_data_gives_its_portals_no_columns()
    {
        Send(Parse("ins"), DescribeStatement("ins"), Bind("p", "ins"), Execute("p"), Sync());
        tracker.OnParseComplete();
        tracker.OnRowDescription([]);
        tracker.OnBindComplete();

        Assert.Empty(KnownColumnsOfRow());
    }

    [Fact]
    public void An_error_skips_the_rest_of_its_batch_and_the_next_batch_is_paired_as_usual()
    {
        Prepare("s1", Columns("a"));

        // Three batches in flight; the middle one fails at its Parse, so the server skips its Bind, Describe and Execute.
        Send(Bind("p1", "s1"), Execute("p1"), Sync());
        Send(Parse("bad"), Bind("p2", "bad"), DescribePortal("p2"), Execute("p2"), Sync());
        Send(Bind("p3", "s1", Binary), Execute("p3"), Sync());

        tracker.OnBindComplete();
        Assert.Equal(["a"], NamesOfRow());
        tracker.OnCompletion();
        tracker.OnReadyForQuery();

        tracker.OnError();
        Assert.Null(tracker.ColumnsOfRow());
        tracker.OnReadyForQuery();

        tracker.OnBindComplete();
        Assert.Equal(["a"], NamesOfRow());
        Assert.Equal([Binary], FormatsOfRow());
        tracker.OnCompletion();
        tracker.OnReadyForQuery();

        // p1 and p3 from s1, and s1; nothing of the failed batch.
        Assert.Equal(3, tracker.Known);
    }

    [Fact]
    public void An_error_in_the_middle_of_an_execution_ends_its_rows_and_the_skipped_describe_learns_nothing()
    {
        Send(Parse("s1"), DescribeStatement("s1"), Bind("p1", "s1"), Execute("p1"), DescribeStatement("s1"), Sync(), Query());
        tracker.OnParseComplete();
        tracker.OnRowDescription(Columns("a"));
        tracker.OnBindComplete();
        Assert.Equal(["a"], NamesOfRow());

        // Division by zero on the second row: the second Describe is skipped with the Execute.
        tracker.OnError();
        Assert.Null(tracker.ColumnsOfRow());
        tracker.OnReadyForQuery();

        // Had the skipped Describe stayed queued, this simple query's description would be taken for it.
        tracker.OnRowDescription(Columns("q"));
        Assert.Equal(["q"], NamesOfRow());
        tracker.OnCompletion();
        tracker.OnReadyForQuery();

        Send(Bind("p2", "s1"), Execute("p2"), Sync());
        tracker.OnBindComplete();
        Assert.Equal(["a"], NamesOfRow());
    }

    [Fact]
    public void An_error_at_sync_does_not_skip_the_batches_after_it()
    {
        // The commit at Sync fails (a deferred constraint); the next batch was sent already.
        Send(Parse("s1"), DescribeStatement("s1"), Bind("p1", "s1"), Execute("p1"), Sync());
        Send(Bind("p2", "s1"), Execute("p2"), Sync());
        tracker.OnParseComplete();
        tracker.OnRowDescription(Columns("a"));
        tracker.OnBindComplete();
        tracker.OnCompletion();
        tracker.OnError();
        tracker.OnReadyForQuery();

        tracker.OnBindComplete();
        Assert.Equal(["a"], NamesOfRow());
    }

    [Fact]
    public void Close_forgets_a_statement_or_a_portal()
    {
        Send(Parse("s1"), DescribeStatement("s1"), Bind("p1", "s1"), Sync());
        tracker.OnParseComplete();
        tracker.OnRowDescription(Columns("a"));
        tracker.OnBindComplete();
        tracker.OnReadyForQuery();
        Assert.Equal(2, tracker.Known);

        Send(ClosePortal("p1"), Sync());
        tracker.OnCloseComplete();
        tracker.OnReadyForQuery();
        Assert.Equal(1, tracker.Known);

        // Closing what does not exist is no error, and forgets nothing else.
        Send(ClosePortal("nope"), CloseStatement("nope"), Sync());
        tracker.OnCloseComplete();
        tracker.OnCloseComplete();
        tracker.OnReadyForQuery();
        Assert.Equal(1, tracker.Known);

        Send(CloseStatement("s1"), Sync());
        tracker.OnCloseComplete();
        tracker.OnReadyForQuery();
        Assert.Equal(0, tracker.Known);

        // A portal bound from the name now, before its statement is described again, has no columns.
        Send(Parse("s1"), Bind("p1", "s1"), Execute("p1"), Sync());
        tracker.OnParseComplete();
        tracker.OnBindComplete();
        Assert.Null(tracker.ColumnsOfRow());
    }

    [Fact]
    public void A_simple_query_of_several_statements_gives_each_result_its_own_columns()
    {
        Send(Query());

        tracker.OnRowDescription(Columns("a"));
        Assert.Equal(["a"], NamesOfRow());
        tracker.OnCompletion();
        Assert.Null(tracker.ColumnsOfRow());

        tracker.OnRowDescription(Columns("b", "c"));
        Assert.Equal(["b", "c"], NamesOfRow());
        tracker.OnCompletion();

        // An UPDATE: no RowDescription, and no columns left over from the SELECT before it.
        tracker.OnCompletion();
        Assert.Null(tracker.ColumnsOfRow());

        tracker.OnRowDescription(Columns("d"));
        Assert.Equal(["d"], NamesOfRow());
        tracker.OnCompletion();
        tracker.OnReadyForQuery();
        Assert.Null(tracker.ColumnsOfRow());
    }

    [Fact]
    public void An_error_in_a_simple_query_ends_its_columns_and_leaves_the_next_query_paired()
    {
        Send(Query(), Query());

        tracker.OnRowDescription(Columns("a"));
        tracker.OnError();
        Assert.Null(tracker.ColumnsOfRow());
        tracker.OnReadyForQuery();

        tracker.OnRowDescription(Columns("z"));
        Assert.Equal(["z"], NamesOfRow());
    }

    [Fact]
    public void A_simple_query_destroys_the_unnamed_statement_and_portal_but_not_the_named_ones()
    {
        Send(Parse(string.Empty), DescribeStatement(string.Empty), Bind(string.Empty, string.Empty), Sync());
        Send(Parse("s1"), DescribeStatement("s1"), Bind("p1", "s1"), Sync());
        tracker.OnParseComplete();
        tracker.OnRowDescription(Columns("u"));
        tracker.OnBindComplete();
        tracker.OnReadyForQuery();
        tracker.OnParseComplete();
        tracker.OnRowDescription(Columns("n"));
        tracker.OnBindComplete();
        tracker.OnReadyForQuery();
        Assert.Equal(4, tracker.Known);

        Send(Query());
        tracker.OnCompletion();
        tracker.OnReadyForQuery();

        Assert.Equal(2, tracker.Known);
        Send(Execute("p1"), Sync());
        Assert.Equal(["n"], NamesOfRow());
    }

    /// <summary>A statement parsed and described in a batch of its own, and answered.</summary>
    private void Prepare(string statement, FieldDescription[] columns)
    {
        Send(Parse(statement), DescribeStatement(statement), Sync());
        tracker.OnParseComplete();
        tracker.OnRowDescription(columns);
        tracker.OnReadyForQuery();
    }

    private void DescribeAndRun(string statement, FieldDescription[] columns)
    {
        Send(Parse(statement), DescribeStatement(statement), Bind(string.Empty, statement), Execute(string.Empty), Sync());
        tracker.OnParseComplete();
        tracker.OnRowDescription(columns);
        tracker.OnBindComplete();
        Assert.Equal(columns.Select(column => column.Name), NamesOfRow());
        tracker.OnCompletion();
        tracker.OnReadyForQuery();
    }

    private void Send(params Request[] requests)
    {
        foreach (Request request in requests)
        {
            tracker.Record(request);
        }
    }

    /// <summary>The columns a DataRow arriving now gets, which must be known.</summary>
    private FieldDescription[] KnownColumnsOfRow() => tracker.ColumnsOfRow() ?? throw new Xunit.Sdk.XunitException("the columns of the row are unknown");

    private string[] NamesOfRow() => [.. KnownColumnsOfRow().Select(column => column.Name)];

    private short[] FormatsOfRow() => [.. KnownColumnsOfRow().Select(column => column.FormatCode)];

    private static FieldDescription[] Columns(params string[] names) =>
        [.. names.Select((name, i) => new FieldDescription(name, TableOid: 16384, ColumnNumber: (short)(i + 1), TypeOid: 25, TypeSize: -1, TypeModifier: -1, FormatCode: Text))];

    private static Request Query() => new(RequestKind.Query, string.Empty);

    private static Request Parse(string statement) => new(RequestKind.Parse, statement);

    private static Request Bind(string portal, string statement, params short[] formats) => new(RequestKind.Bind, portal, statement, formats);

    private static Request DescribeStatement(string statement) => new(RequestKind.DescribeStatement, statement);

    private static Request DescribePortal(string portal) => new(RequestKind.DescribePortal, portal);

    private static Request Execute(string portal) => new(RequestKind.Execute, portal);

    private static Request CloseStatement(string statement) => new(RequestKind.CloseStatement, statement);

    private static Request ClosePortal(string portal) => new(RequestKind.ClosePortal, portal);

    private static Request Sync() => new(RequestKind.Sync, string.Empty);
}
