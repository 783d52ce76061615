using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PgProxy.Core.Admin;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Tests.Admin;

/// <summary>The console's answers, message by message, as psql (simple protocol) and drivers (extended protocol) read them.</summary>
public sealed class ConsoleConversationTests
{
    private readonly FakeConsoleHost host = new();
    private readonly ConsoleConversation conversation;

    public ConsoleConversationTests()
    {
        host.SessionList.Add(FakeConsoleHost.Session(3, SessionState.Idle));
        conversation = new ConsoleConversation(host.Executor());
    }

    [Fact]
    public void A_query_is_answered_with_its_columns_rows_tag_and_ReadyForQuery_idle()
    {
        (List<Frame> answer, ConversationStep step) = Send(Query("SHOW VERSION"));

        Assert.Equal(ConversationStep.Flush, step);
        Assert.Equal("TDCZ", Codes(answer));
        Assert.Equal(["version"], Columns(answer[0]).Select(f => f.Name));
        string?[] version = [$"PgProxy {ConsoleExecutor.Version}"];
        Assert.Equal(version, Row(answer[1]));
        Assert.Equal("SELECT 1", Tag(answer[2]));
        Assert.Equal([(byte)'I'], answer[3].Body.ToArray());
    }

    [Fact]
    public void Every_column_is_text_in_text_format()
    {
        (List<Frame> answer, _) = Send(Query("SHOW SESSIONS"));

        Assert.All(Columns(answer[0]), field => Assert.Equal(FieldDescription.Text(field.Name), field));
        Assert.Equal(ConsoleCatalog.Of(ConsoleCommandKind.ShowSessions).Columns, Columns(answer[0]).Select(f => f.Name));
    }

    [Fact]
    public void Several_statements_answer_in_turn_and_one_ReadyForQuery_ends_them()
    {
        (List<Frame> answer, _) = Send(Query("SHOW VERSION; reset stats;"));

        Assert.Equal("TDCCZ", Codes(answer));
        Assert.Equal("RESET", Tag(answer[3]));
    }

    [Fact]
    public void An_error_stops_the_rest_of_the_query_string()
    {
        (List<Frame> answer, _) = Send(Query("SHOW VERSION; nonsense; SHOW HELP"));

        Assert.Equal("TDCEZ", Codes(answer));
        Dictionary<char, string> fields = Fields(answer[3]);
        Assert.Equal("ERROR", fields['S']);
        Assert.Equal("42601", fields['C']);
        Assert.Equal("unknown console command \"nonsense\"", fields['M']);
        Assert.Contains("SHOW HELP", fields['H'], StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_query_gets_EmptyQueryResponse()
    {
        Assert.Equal("IZ", Codes(Send(Query(" ; ")).Answer));
    }

    [Fact]
    public void A_command_without_rows_answers_with_its_tag_only()
    {
        (List<Frame> answer, _) = Send(Query("KILL 3"));

        Assert.Equal("CZ", Codes(answer));
        Assert.Equal("KILL", Tag(answer[0]));
        Assert.Equal([3L], host.Killed);
    }

    [Fact]
    public void The_extended_protocol_answers_parse_bind_describe_execute_sync()
    {
        (List<Frame> answer, ConversationStep step) = Send(
            Parse("show sessions"),
            Bind(resultFormats: []),
            Describe('P'),
            Execute(),
            Sync());

        Assert.Equal(ConversationStep.Flush, step);
        Assert.Equal("12TDCZ", Codes(answer));
        string?[] session = ["3", "proxy", "127.0.0.1:50000", "app", "sales", "report", "off", "on", "idle", null, null, "2026-01-02 03:04:05.678+00", "100", "2000"];
        Assert.Equal(session, Row(answer[3]));
        Assert.Equal("SELECT 1", Tag(answer[4]));
    }

    [Fact]
    public void Until_Sync_or_Flush_nothing_needs_sending()
    {
        Assert.Equal(ConversationStep.Continue, Send(Parse("SHOW HELP")).Step);
        Assert.Equal(ConversationStep.Flush, Send(Message(FrontendMessageCode.Flush, [])).Step);
    }

    [Fact]
    public void A_described_portal_carries_the_format_codes_the_bind_asked_for()
    {
        (List<Frame> answer, _) = Send(Parse("SHOW VERSION"), Bind(resultFormats: [1]), Describe('P'), Sync());

        Assert.Equal("12TZ", Codes(answer));
        Assert.Equal(WireFormat.BinaryFormat, Assert.Single(Columns(answer[2])).FormatCode);
    }

    [Fact]
    public void A_described_statement_has_no_parameters_and_its_columns_or_NoData()
    {
        (List<Frame> rows, _) = Send(Parse("SHOW CONFIG"), Describe('S'), Sync());
        (List<Frame> none, _) = Send(Parse("RELOAD"), Describe('S'), Bind(resultFormats: []), Describe('P'), Sync());

        Assert.Equal("1tTZ", Codes(rows));
        Assert.Equal([0, 0], rows[1].Body.ToArray());
        Assert.Equal(["key", "value"], Columns(rows[2]).Select(f => f.Name));
        Assert.Equal("1tn2nZ", Codes(none));
    }

    [Fact]
    public void After_an_error_every_message_up_to_Sync_is_skipped()
    {
        (List<Frame> answer, _) = Send(Parse("SHOW NOTHING"), Bind(resultFormats: []), Describe('P'), Execute(), Sync(), Query("SHOW VERSION"));

        Assert.Equal("EZTDCZ", Codes(answer));
        Assert.Equal("42601", Fields(answer[0])['C']);
    }

    [Fact]
    public void Parameters_are_refused()
    {
        var bind = new ArrayBufferWriter<byte>();
        QueryMessages.WriteBindUnnamed(bind, Encoding.UTF8, ["1"]);
        (List<Frame> answer, _) = Send(Parse("SHOW HELP"), bind.WrittenSpan.ToArray(), Sync());

        Assert.Equal("1EZ", Codes(answer));
        Assert.Equal("bind message supplies 1 parameters, but prepared statement \"\" requires 0", Fields(answer[1])['M']);
    }

    [Fact]
    public void An_unknown_statement_or_portal_is_an_error()
    {
        Assert.Equal("26000", Fields(Send(Bind(resultFormats: []), Sync()).Answer[0])['C']);
        Assert.Equal("34000", Fields(Send(Execute(), Sync()).Answer[0])['C']);
    }

    [Fact]
    public void Portals_end_at_Sync_and_statements_stay()
    {
        Send(Parse("SHOW VERSION"), Bind(resultFormats: []), Sync());

        Assert.Equal("EZ", Codes(Send(Execute(), Sync()).Answer));
        Assert.Equal("2DCZ", Codes(Send(Bind(resultFormats: []), Execute(), Sync()).Answer));
    }

    [Fact]
    public void Close_is_answered_whether_or_not_the_name_exists()
    {
        Assert.Equal("13Z", Codes(Send(Parse("SHOW HELP"), Close('S'), Sync()).Answer));
        Assert.Equal("3Z", Codes(Send(Close('P'), Sync()).Answer));
        Assert.Equal("EZ", Codes(Send(Bind(resultFormats: []), Sync()).Answer));
    }

    [Fact]
    public void Shutdown_waits_until_its_answer_has_been_sent()
    {
        (List<Frame> answer, _) = Send(Query("SHUTDOWN SAFE"));

        Assert.Equal("CZ", Codes(answer));
        Assert.Empty(host.Stops);
        foreach (Action action in conversation.TakeAfterFlush())
        {
            action();
        }

        Assert.Equal([true], host.Stops);
        Assert.Empty(conversation.TakeAfterFlush());
    }

    [Fact]
    public void Terminate_closes_and_an_unknown_message_is_fatal()
    {
        Assert.Equal(ConversationStep.Close, Send(Message(FrontendMessageCode.Terminate, [])).Step);

        (List<Frame> answer, ConversationStep step) = Send(Message((FrontendMessageCode)'z', []));
        Assert.Equal(ConversationStep.Close, step);
        Assert.Equal("FATAL", Fields(Assert.Single(answer))['S']);
        Assert.Equal("08P01", Fields(answer[0])['C']);
    }

    [Fact]
    public void A_function_call_is_refused_and_followed_by_ReadyForQuery()
    {
        Assert.Equal("EZ", Codes(Send(Message(FrontendMessageCode.FunctionCall, [0, 0, 0, 1])).Answer));
    }

    private (List<Frame> Answer, ConversationStep Step) Send(params byte[][] messages)
    {
        var output = new ArrayBufferWriter<byte>();
        ConversationStep step = ConversationStep.Continue;
        foreach (byte[] message in messages)
        {
            step = conversation.HandleAsync(message[0], new ReadOnlySequence<byte>(message, MessageHeader.Size, message.Length - MessageHeader.Size), output, CancellationToken.None).GetAwaiter().GetResult();
        }

        var buffer = new ReadOnlySequence<byte>(output.WrittenMemory.ToArray());
        var frames = new List<Frame>();
        while (FrameReader.TryReadFrame(ref buffer, int.MaxValue, out Frame frame) == FrameReadStatus.Complete)
        {
            frames.Add(frame);
        }

        Assert.True(buffer.IsEmpty, "every message the console wrote is whole");
        return (frames, step);
    }

    private static string Codes(List<Frame> frames) => new([.. frames.Select(f => (char)f.Code)]);

    private static FieldDescription[] Columns(Frame frame)
    {
        Assert.Equal((byte)BackendMessageCode.RowDescription, frame.Code);
        Assert.True(RowDescriptionMessage.TryRead(frame.Body, Encoding.UTF8, out FieldDescription[] fields));
        return fields;
    }

    private static string?[] Row(Frame frame)
    {
        Assert.True(DataRowMessage.TryReadText(frame.Body, Encoding.UTF8, out string?[] values));
        return values;
    }

    private static string Tag(Frame frame)
    {
        Assert.True(CommandCompleteMessage.TryRead(frame.Body, Encoding.UTF8, out string tag));
        return tag;
    }

    private static Dictionary<char, string> Fields(Frame frame)
    {
        Assert.Equal((byte)BackendMessageCode.ErrorResponse, frame.Code);
        return BackendMessages.ReadFields(frame.Body, Encoding.UTF8).ToDictionary(f => f.Key, f => f.Value);
    }

    private static byte[] Query(string text)
    {
        var output = new ArrayBufferWriter<byte>();
        QueryMessages.WriteQuery(output, Encoding.UTF8, text);
        return output.WrittenSpan.ToArray();
    }

    private static byte[] Parse(string text)
    {
        var output = new ArrayBufferWriter<byte>();
        QueryMessages.WriteParse(output, Encoding.UTF8, string.Empty, text, []);
        return output.WrittenSpan.ToArray();
    }

    private static byte[] Bind(short[] resultFormats)
    {
        // Unnamed portal and statement, no parameter formats, no parameters, then the result formats.
        var body = new List<byte> { 0, 0, 0, 0, 0, 0 };
        body.AddRange([(byte)(resultFormats.Length >> 8), (byte)resultFormats.Length]);
        foreach (short format in resultFormats)
        {
            body.AddRange([(byte)(format >> 8), (byte)format]);
        }

        return Message(FrontendMessageCode.Bind, [.. body]);
    }

    private static byte[] Describe(char target) => Message(FrontendMessageCode.Describe, [(byte)target, 0]);

    private static byte[] Close(char target) => Message(FrontendMessageCode.Close, [(byte)target, 0]);

    private static byte[] Execute()
    {
        var output = new ArrayBufferWriter<byte>();
        QueryMessages.WriteExecuteUnnamed(output);
        return output.WrittenSpan.ToArray();
    }

    private static byte[] Sync() => FrontendMessages.Sync.ToArray();

    private static byte[] Message(FrontendMessageCode code, byte[] body)
    {
        var message = new byte[MessageHeader.Size + body.Length];
        message[0] = (byte)code;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), body.Length + 4);
        body.CopyTo(message, MessageHeader.Size);
        return message;
    }
}
