using System.Text;
using PgProxy.Core.Pooling;

namespace PgProxy.Core.Tests.Pooling;

/// <summary>
/// The parts of transaction pooling that are state machines over message types: the response sequencer (which answer
/// belongs to which request, PostgreSQL's skip-to-Sync after an error), the per-connection statement cache, the check
/// of session-wide statements, and the settings diff.
/// </summary>
public sealed class TransactionMappingTests
{
    private static readonly PreparedShape Shape = PreparedShape.Of("SELECT 1\0\0\0"u8);

    [Fact]
    public void A_dropped_answer_is_the_completion_of_the_request_it_was_said_for_and_nothing_else()
    {
        var sequencer = new ResponseSequencer();
        sequencer.NextIs(ResponseAction.Drop);
        Request(sequencer, 'P'); // PgProxy's own Parse
        Request(sequencer, 'B');
        Request(sequencer, 'E');
        Request(sequencer, 'S');

        Assert.Equal(ResponseAction.Drop, sequencer.Decide((byte)'1').Action);
        Assert.Equal(ResponseAction.Forward, sequencer.Decide((byte)'N').Action);
        Respond(sequencer, 'N'); // a notice in between changes nothing
        Respond(sequencer, '1');
        Assert.Equal(ResponseAction.Forward, sequencer.Decide((byte)'2').Action);
        Respond(sequencer, '2');
        Respond(sequencer, 'D');
        Respond(sequencer, 'C');
        Assert.Equal(1, sequencer.Pending);
        Respond(sequencer, 'Z');
        Assert.Equal(0, sequencer.Pending);
    }

    [Fact]
    public void A_stand_in_answer_is_replaced_by_what_the_client_is_owed()
    {
        var sequencer = new ResponseSequencer();
        byte[] parseComplete = [(byte)'1', 0, 0, 0, 4];
        sequencer.NextIs(ResponseAction.Replace, (byte)'3', parseComplete);
        Request(sequencer, 'C');
        Request(sequencer, 'S');

        ResponseDecision decision = sequencer.Decide((byte)'3');

        Assert.Equal(ResponseAction.Replace, decision.Action);
        Assert.Same(parseComplete, decision.Replacement);
    }

    [Fact]
    public void An_error_skips_every_extended_request_to_the_sync_and_undoes_what_they_prepared()
    {
        var undone = new List<StatementUndo>();
        var sequencer = new ResponseSequencer { Failed = undone.Add };
        var first = new StatementUndo("s1", Shape, PreparedOnServer: true);
        var second = new StatementUndo("s2", Shape, PreparedOnServer: false);
        sequencer.NextIs(ResponseAction.Forward, undo: first);
        Request(sequencer, 'P');
        sequencer.NextIs(ResponseAction.Replace, (byte)'3', [(byte)'1', 0, 0, 0, 4], second);
        Request(sequencer, 'C');
        Request(sequencer, 'B');
        Request(sequencer, 'S');

        Respond(sequencer, 'E');

        Assert.Equal([first, second], undone);
        Assert.Equal(1, sequencer.Pending); // the Sync, answered by ReadyForQuery
        Respond(sequencer, 'Z');
        Assert.Equal(0, sequencer.Pending);
    }

    [Fact]
    public void Requests_sent_after_an_error_and_before_their_sync_are_never_answered()
    {
        var undone = new List<StatementUndo>();
        var sequencer = new ResponseSequencer { Failed = undone.Add };
        Request(sequencer, 'B');
        Respond(sequencer, 'E');
        var late = new StatementUndo("late", Shape, PreparedOnServer: true);
        sequencer.NextIs(ResponseAction.Forward, undo: late);

        Request(sequencer, 'P');
        Assert.Equal(0, sequencer.Pending);
        Request(sequencer, 'S');

        Assert.Equal([late], undone);
        Assert.Equal(1, sequencer.Pending);
    }

    [Fact]
    public void An_error_inside_a_simple_query_waits_for_its_ready_for_query()
    {
        var sequencer = new ResponseSequencer();
        Request(sequencer, 'Q');
        Respond(sequencer, 'E');
        Assert.Equal(1, sequencer.Pending);
        Respond(sequencer, 'Z');
        Assert.Equal(0, sequencer.Pending);
    }

    [Fact]
    public void An_error_of_a_request_naming_a_server_statement_is_given_back_with_the_clients_name()
    {
        var sequencer = new ResponseSequencer();
        sequencer.NextIs(ResponseAction.Forward, serverName: "pgproxy_abc", clientName: "S_1");
        Request(sequencer, 'B');

        ResponseDecision decision = sequencer.Decide((byte)'E');

        Assert.True(decision.MapsError);
        Assert.Equal(("pgproxy_abc", "S_1"), (decision.ServerName, decision.ClientName));
        Assert.False(sequencer.Decide((byte)'2').MapsError);
    }

    [Fact]
    public void Error_names_are_replaced_in_every_field_and_the_length_follows()
    {
        byte[] body = Encoding.UTF8.GetBytes("SERROR\0C26000\0Mprepared statement \"pgproxy_abc\" does not exist\0\0");
        byte[] frame = [(byte)'E', .. BitConverter.GetBytes(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(body.Length + 4)), .. body];
        var output = new System.Buffers.ArrayBufferWriter<byte>();

        Assert.True(ErrorNames.TryRename(new System.Buffers.ReadOnlySequence<byte>(frame), "pgproxy_abc", "mine", output));

        string renamed = Encoding.UTF8.GetString(output.WrittenSpan[5..]);
        Assert.Contains("prepared statement \"mine\" does not exist", renamed, StringComparison.Ordinal);
        Assert.Equal(output.WrittenCount - 1, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(output.WrittenSpan[1..]));
        Assert.False(ErrorNames.TryRename(new System.Buffers.ReadOnlySequence<byte>(frame), "pgproxy_zzz", "mine", new System.Buffers.ArrayBufferWriter<byte>()));
    }

    [Fact]
    public void The_statement_cache_closes_the_least_recently_used_but_never_one_this_link_used()
    {
        var cache = new ServerStatements(capacity: 2);
        cache.BeginLink();
        Assert.Null(cache.Add("a"));
        Assert.Null(cache.Add("b"));
        Assert.Null(cache.Add("c")); // a was used by this link: kept beyond capacity for now

        cache.BeginLink();
        Assert.True(cache.Touch("a"));
        Assert.Equal("b", cache.Add("d"));
        Assert.False(cache.Touch("b"));
        Assert.True(cache.Touch("c"));
    }

    [Fact]
    public void Shapes_of_the_same_definition_share_a_server_name_and_others_do_not()
    {
        PreparedShape one = PreparedShape.Of("SELECT $1\0\0\u0001\0\0\0\u0017"u8);
        PreparedShape same = PreparedShape.Of("SELECT $1\0\0\u0001\0\0\0\u0017"u8);
        PreparedShape otherType = PreparedShape.Of("SELECT $1\0\0\u0001\0\0\0\u0019"u8);

        Assert.Equal(one.ServerName, same.ServerName);
        Assert.NotEqual(one.ServerName, otherType.ServerName);
        Assert.StartsWith("pgproxy_", one.ServerName, StringComparison.Ordinal);
        Assert.True(one.ServerName.Length < 64);
    }

    [Theory]
    [InlineData("SELECT 1", false)]
    [InlineData("UPDATE t SET a = 1", false)]
    [InlineData("  set TimeZone = 'UTC'", true)]
    [InlineData("/* c */ SET x = 1", true)]
    [InlineData("-- c\nreset all", true)]
    [InlineData("SELECT 1; PREPARE p AS SELECT 1", true)]
    [InlineData("SELECT settings FROM t", false)]
    [InlineData("LISTEN x", true)]
    public void Only_texts_with_a_statement_that_may_matter_are_parsed(string sql, bool mayMatter) =>
        Assert.Equal(mayMatter, PooledQueryChecker.MayMatter(Encoding.UTF8.GetBytes(sql)));

    [Theory]
    [InlineData("BEGIN", true)]
    [InlineData("  begin isolation level serializable", true)]
    [InlineData("START TRANSACTION", true)]
    [InlineData("beginning", false)]
    [InlineData("SELECT 1", false)]
    public void A_transaction_block_is_seen_opening_without_a_parse(string sql, bool begins) =>
        Assert.Equal(begins, PooledQueryChecker.BeginsTransaction(Encoding.UTF8.GetBytes(sql)));

    [Fact]
    public void Session_wide_statements_are_found_and_judged()
    {
        Assert.Equal(["timezone", "work_mem"], Check("SET TIME ZONE 'UTC'; SET SESSION work_mem = '8MB'; SET LOCAL statement_timeout = 5").Settings);
        Assert.Equal(["search_path"], Check("SELECT pg_catalog.set_config('search_path', '', false)").Settings);
        Assert.Equal(["p"], Check("PREPARE p AS SELECT 1").Prepared);
        Assert.Equal(["p"], Check("DEALLOCATE p").Deallocated);
        Assert.Equal(PooledQueryEffect.None, Check("SELECT 1; EXECUTE p").Effect);
        Assert.Equal(PooledQueryEffect.Listen, Check("LISTEN channel").Effect);
        Assert.Equal(PooledQueryEffect.DeallocateAll, Check("DEALLOCATE ALL").Effect);
        Assert.Equal(PooledQueryEffect.DiscardAll, Check("discard all").Effect);
        Assert.Equal(PooledQueryEffect.ResetAll, Check("RESET ALL").Effect);
        Assert.Equal(PooledQueryEffect.Refuse, Check("DISCARD ALL; SELECT 1").Effect);
        Assert.Equal(PooledQueryEffect.None, Check("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").Effect);
        Assert.Null(Check("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").Settings);
        Assert.Equal(PooledQueryEffect.None, Check("SELECT 'PREPARE'").Effect);
    }

    [Fact]
    public void Listen_and_unlisten_are_found_in_order_with_their_channels_and_refused_among_other_statements()
    {
        PooledQueryCheck check = Check("LISTEN Orders; unlisten \"Mixed Case\"; UNLISTEN *");

        Assert.Equal(PooledQueryEffect.Listen, check.Effect);
        Assert.Equal([new ListenChange("orders", true), new ListenChange("Mixed Case", false), new ListenChange(null, false)], check.Listens);
        Assert.Equal(PooledQueryEffect.Refuse, Check("LISTEN a; SELECT 1").Effect);
        Assert.True(PooledQueryChecker.MayListen(Encoding.UTF8.GetBytes("/* c */ listen a")));
        Assert.True(PooledQueryChecker.MayListen(Encoding.UTF8.GetBytes("SELECT 1; UNLISTEN *")));
        Assert.False(PooledQueryChecker.MayListen(Encoding.UTF8.GetBytes("SELECT 'listen'")));
        Assert.False(PooledQueryChecker.MayListen(Encoding.UTF8.GetBytes("listener")));
    }

    [Fact]
    public void Settings_differences_become_set_config_and_reset()
    {
        var client = new SessionSettings([new("TimeZone", "Asia/Tokyo"), new("application_name", "it's")]);
        var server = new SessionSettings([new("timezone", "Asia/Tokyo"), new("work_mem", "7MB")]);

        string? changes = client.ChangesFrom(server);

        Assert.Equal("SELECT pg_catalog.set_config(E'application_name', E'it''s', false);RESET \"work_mem\";", changes);
        server.CopyFrom(client);
        Assert.Null(client.ChangesFrom(server));
    }

    private static PooledQueryCheck Check(string sql) => PooledQueryChecker.Check(Encoding.UTF8.GetBytes(sql));

    private static void Request(ResponseSequencer sequencer, char code) => sequencer.OnFrame(toServer: true, (byte)code);

    private static void Respond(ResponseSequencer sequencer, char code) => sequencer.OnFrame(toServer: false, (byte)code);
}
