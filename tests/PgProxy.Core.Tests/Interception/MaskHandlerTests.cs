using System.Buffers;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;
using PgProxy.Core.Masks;
using PgProxy.Core.Relay;
using PgProxy.Core.Rules;
using PgProxy.Core.Server;
using PgProxy.Core.Tests.Masks;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Tests.Interception;

/// <summary>The mask stage on DataRows as the pump hands them over: whole frames, in one buffer segment or straddling several.</summary>
public sealed class MaskHandlerTests
{
    private const uint TableOid = 16384;

    [Fact]
    public async Task A_row_straddling_buffer_segments_is_masked_as_one_in_a_single_segment()
    {
        (MaskHandler handler, _) = Handler("{keep-last: 4}");
        byte[] frame = MaskedRowWriterTests.Row(["42"u8.ToArray(), "carte-4111111111111234-été"u8.ToArray(), null, "b-value"u8.ToArray()]);
        byte[] expected = MaskedRowWriterTests.Row(["42"u8.ToArray(), "**********************-été"u8.ToArray(), null, "b-value"u8.ToArray()]);

        for (int cut = 1; cut < frame.Length; cut++)
        {
            var sink = new CapturingSink();
            Assert.True(handler.Wants((byte)BackendMessageCode.DataRow));
            await handler.HandleAsync((byte)BackendMessageCode.DataRow, Split(frame, cut), sink, CancellationToken.None);

            Assert.Equal(expected, sink.Bytes);
        }
    }

    [Fact]
    public async Task A_row_that_does_not_match_its_description_is_refused_not_released()
    {
        (MaskHandler handler, _) = Handler("{keep-last: 4}");
        byte[] frame = MaskedRowWriterTests.Row(["42"u8.ToArray(), "4111111111111234"u8.ToArray()]);
        var sink = new CapturingSink();

        Assert.True(handler.Wants((byte)BackendMessageCode.DataRow));
        await handler.HandleAsync((byte)BackendMessageCode.DataRow, new ReadOnlySequence<byte>(frame), sink, CancellationToken.None);

        Assert.Equal((byte)BackendMessageCode.ErrorResponse, sink.Bytes[0]);
        Assert.True(sink.Bytes.AsSpan().IndexOf("4111"u8) < 0);
    }

    /// <summary>A session's mask stage for a table (id, a, b, c) whose column a is masked, after a simple query's RowDescription.</summary>
    private static (MaskHandler Handler, ServerProtocolState State) Handler(string with)
    {
        ProxyConfig config = MaskSets.Load(MaskSets.Config($"      - {{name: m, columns: [public.t.a], with: {with}}}\n"));
        RuleSet rules = RuleSet.Build(config.Instances[0].Rules, config.Instances[0].Masks, config.Settings);
        var relation = new CatalogRelation(TableOid, "public", "t", 'r');
        relation.Columns[2] = new ColumnVerdict("a", rules.Masks.Masks[0], null);
        rules.Masks.Store("db", new MaskCatalog([relation]));
        var state = new ServerProtocolState(trackStatements: true);
        var context = new SessionContext(1, "proxy", null, [new("user", "u"), new("database", "db")], state, NullLogger.Instance);
        state.Statements!.OnFrontendMessage((byte)FrontendMessageCode.Query, default);
        state.Statements.OnRowDescription([
            new FieldDescription("id", TableOid, 1, 23, 4, -1, 0),
            new FieldDescription("a", TableOid, 2, 25, -1, -1, 0),
            new FieldDescription("b", TableOid, 3, 25, -1, -1, 0),
            new FieldDescription("c", TableOid, 4, 25, -1, -1, 0),
        ]);
        return (new MaskHandler(new LiveRules { Current = rules }, context, state), state);
    }

    /// <summary>The frame over two buffer segments, cut at <paramref name="cut"/>.</summary>
    private static ReadOnlySequence<byte> Split(byte[] frame, int cut)
    {
        var first = new Segment(frame[..cut], 0);
        Segment last = first.Append(frame[cut..]);
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] bytes, long runningIndex)
        {
            Memory = bytes;
            RunningIndex = runningIndex;
        }

        public Segment Append(byte[] bytes)
        {
            var next = new Segment(bytes, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>Keeps a copy of what is written: the bytes are only lent.</summary>
    private sealed class CapturingSink : IFrameSink
    {
        public byte[] Bytes { get; private set; } = [];

        public ValueTask WriteAsync(ReadOnlySequence<byte> frames, CancellationToken cancellationToken)
        {
            Bytes = [.. Bytes, .. frames.ToArray()];
            return ValueTask.CompletedTask;
        }
    }
}
