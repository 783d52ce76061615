using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
using PgProxy.Protocol;

namespace PgProxy.Core.Tests.Relay;

/// <summary>The pump over bytes: framing across segments, oversize and invalid lengths, handler order, and observing every frame once.</summary>
public sealed class ForwardingPumpTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Frames_cut_anywhere_are_forwarded_byte_for_byte()
    {
        byte[] input = [.. Frame('Q', "SELECT 1\0"u8), .. Frame('P', new byte[70_000]), .. Frame('S', []), .. Frame('X', [])];

        // Every cut position from 1 to 12 bytes per piece, so headers and bodies are split every way.
        for (int piece = 1; piece <= 12; piece++)
        {
            var run = new PumpRun(PumpDirection.ClientToServer);
            Task<PumpStop> pumping = run.Pump.RunAsync(CancellationToken.None);
            for (int at = 0; at < input.Length; at += piece)
            {
                await run.Pipe.Writer.WriteAsync(input.AsMemory(at, Math.Min(piece, input.Length - at)));
            }

            Assert.Equal(PumpStop.Terminated, await pumping.WaitAsync(Deadline));
            Assert.Equal(input, run.Output.ToArray());
        }
    }

    [Fact]
    public async Task An_oversized_client_message_is_refused_from_its_header_before_its_body_arrives()
    {
        var run = new PumpRun(PumpDirection.ClientToServer, maxMessageSize: 1024);
        byte[] before = Frame('Q', "SELECT 1\0"u8);
        Task<PumpStop> pumping = run.Pump.RunAsync(CancellationToken.None);

        // Only the header of a 1 MB Query: the pump must not wait for the rest.
        await run.Pipe.Writer.WriteAsync(before.Concat(Header('Q', 1_000_000)).ToArray());

        Assert.Equal(PumpStop.MessageTooLarge, await pumping.WaitAsync(Deadline));
        Assert.Equal(1_000_001, run.Pump.OffendingLength);
        Assert.Equal(before, run.Output.ToArray());
        Assert.True(run.Pump.AtFrameBoundary);
    }

    [Fact]
    public async Task A_length_below_four_stops_the_pump_after_the_whole_frames_before_it()
    {
        var run = new PumpRun(PumpDirection.ServerToClient);
        byte[] before = Frame('Z', "I"u8);
        Task<PumpStop> pumping = run.Pump.RunAsync(CancellationToken.None);

        await run.Pipe.Writer.WriteAsync(before.Concat(Header('D', 3)).ToArray());

        Assert.Equal(PumpStop.InvalidMessage, await pumping.WaitAsync(Deadline));
        Assert.Equal(3, run.Pump.OffendingLength);
        Assert.Equal(before, run.Output.ToArray());
    }

    [Fact]
    public async Task A_handler_gets_its_frames_whole_and_in_order_between_the_forwarded_ones()
    {
        var handler = new RecordingHandler((byte)'Q', replacement: Frame('Q', "SELECT 2\0"u8));
        var run = new PumpRun(PumpDirection.ClientToServer, handler: handler);
        byte[] parse = Frame('P', "\0SELECT 1\0\0\0"u8);
        byte[] sync = Frame('S', []);
        Task<PumpStop> pumping = run.Pump.RunAsync(CancellationToken.None);

        byte[] input = [.. parse, .. Frame('Q', "SELECT 1\0"u8), .. sync, .. Frame('X', [])];
        foreach (byte b in input)
        {
            await run.Pipe.Writer.WriteAsync(new[] { b });
        }

        Assert.Equal(PumpStop.Terminated, await pumping.WaitAsync(Deadline));
        Assert.Equal([.. parse, .. Frame('Q', "SELECT 2\0"u8), .. sync, .. Frame('X', [])], run.Output.ToArray());
        Assert.Equal(["Q"], handler.Seen);
    }

    [Fact]
    public async Task Every_frame_is_observed_once_whether_forwarded_or_handled()
    {
        foreach (bool handled in new[] { false, true })
        {
            var handler = handled ? new RecordingHandler((byte)'Q', (byte)'S', (byte)'P') : null;
            var run = new PumpRun(PumpDirection.ClientToServer, handler: handler);
            Task<PumpStop> pumping = run.Pump.RunAsync(CancellationToken.None);

            // Start-up (1) + Query + Sync: three requests; the Parse opens an extended batch that the Sync closes.
            byte[] firstBatch = [.. Frame('Q', "SELECT 1\0"u8), .. Frame('P', "\0SELECT 1\0\0\0"u8)];
            await run.Pipe.Writer.WriteAsync(firstBatch);

            // A batch is observed before it is written on: once it has arrived at the output, its frames are counted.
            await run.Output.WhenLengthAsync(firstBatch.Length).WaitAsync(Deadline);
            Assert.True(run.State.ExtendedBatchOpen);
            Assert.Equal(2, run.State.OutstandingRequests);
            await run.Pipe.Writer.WriteAsync(Frame('S', []));
            await run.Pipe.Writer.CompleteAsync();

            Assert.Equal(PumpStop.SourceClosed, await pumping.WaitAsync(Deadline));
            Assert.Equal(3, run.State.OutstandingRequests);
            Assert.False(run.State.ExtendedBatchOpen);
        }
    }

    [Fact]
    public async Task A_handled_frame_is_counted_after_what_the_handler_put_before_it()
    {
        // The metadata-query case: while the handler holds the client's Query, the request it sends first gets the
        // next number, and the client's Query the one after.
        var state = new ServerProtocolState();
        long numberSeenByHandler = 0;
        var handler = new RecordingHandler((byte)'Q') { OnHandle = () => numberSeenByHandler = state.NextRequestNumber };
        var run = new PumpRun(PumpDirection.ClientToServer, handler: handler, state: state);
        Task<PumpStop> pumping = run.Pump.RunAsync(CancellationToken.None);

        await run.Pipe.Writer.WriteAsync(Frame('Q', "SELECT 1\0"u8));
        await run.Pipe.Writer.CompleteAsync();

        Assert.Equal(PumpStop.SourceClosed, await pumping.WaitAsync(Deadline));
        Assert.Equal(2, numberSeenByHandler);
        Assert.Equal(3, run.State.NextRequestNumber);
    }

    [Fact]
    public async Task Handlers_run_in_order_and_each_sees_what_the_one_before_it_wrote()
    {
        // The first turns a Query into a Parse and a Sync; the second takes Parse only, so it sees the first's Parse,
        // and the Sync goes straight to the output. A Query the first does not want never reaches the second.
        byte[] parse = Frame('P', "\0SELECT 2\0\0\0"u8);
        var rewriting = new RecordingHandler((byte)'Q', replacement: [.. parse, .. Frame('S', [])]);
        var second = new RecordingHandler((byte)'P');
        var run = new PumpRun(PumpDirection.ClientToServer, 1 << 30, [rewriting, second]);
        Task<PumpStop> pumping = run.Pump.RunAsync(CancellationToken.None);

        await run.Pipe.Writer.WriteAsync(Frame('Q', "SELECT 1\0"u8));
        await run.Pipe.Writer.CompleteAsync();

        Assert.Equal(PumpStop.SourceClosed, await pumping.WaitAsync(Deadline));
        Assert.Equal(["Q"], rewriting.Seen);
        Assert.Equal(["P"], second.Seen);
        Assert.Equal([.. parse, .. Frame('S', [])], run.Output.ToArray());
    }

    [Fact]
    public async Task Toward_the_server_the_state_follows_what_the_handlers_wrote_not_what_the_client_sent()
    {
        // A Query replaced by Parse + Sync: the server received one Sync (a request) and an extended batch; a Query
        // dropped by a handler was never received, so it is no request.
        var replacing = new RecordingHandler((byte)'Q', replacement: [.. Frame('P', "\0SELECT 2\0\0\0"u8), .. Frame('S', [])]);
        var dropping = new DroppingHandler((byte)'F');
        var run = new PumpRun(PumpDirection.ClientToServer, 1 << 30, [replacing, dropping]);
        Task<PumpStop> pumping = run.Pump.RunAsync(CancellationToken.None);

        await run.Pipe.Writer.WriteAsync((byte[])[.. Frame('Q', "SELECT 1\0"u8), .. Frame('F', "\0\0\0\0"u8)]);
        await run.Pipe.Writer.CompleteAsync();

        Assert.Equal(PumpStop.SourceClosed, await pumping.WaitAsync(Deadline));
        Assert.Equal(2, run.State.OutstandingRequests); // the start-up and the Sync
        Assert.False(run.State.ExtendedBatchOpen);
    }

    [Fact]
    public async Task A_tracked_session_waits_for_a_large_bind_whole_and_learns_its_portal()
    {
        var state = new ServerProtocolState(trackStatements: true);
        var frontend = new PumpRun(PumpDirection.ClientToServer, state: state);
        var backend = new PumpRun(PumpDirection.ServerToClient, state: state);
        Task<PumpStop> sending = frontend.Pump.RunAsync(CancellationToken.None);
        Task<PumpStop> receiving = backend.Pump.RunAsync(CancellationToken.None);

        // Bind of portal "p" from statement "s" with one 100 kB text parameter and binary results: larger than the
        // streaming threshold, so without tracking it would stream through in pieces.
        byte[] value = new byte[100_000];
        byte[] bind = Frame('B', [.. "p\0s\0"u8, 0, 0, 0, 1, .. BigEndian(value.Length), .. value, 0, 1, 0, 1]);
        byte[] requests = [.. Frame('P', "s\0SELECT 'x'\0\0\0"u8), .. Frame('D', "Ss\0"u8), .. bind, .. Frame('E', "p\0\0\0\0\0"u8), .. Frame('S', [])];
        for (int offset = 0; offset < requests.Length; offset += 7000)
        {
            await frontend.Pipe.Writer.WriteAsync(requests.AsMemory(offset, Math.Min(7000, requests.Length - offset)));
        }

        await frontend.Output.WhenLengthAsync(requests.Length).WaitAsync(Deadline);
        var column = new PgProxy.Protocol.Backend.FieldDescription("x", 0, 0, 25, -1, -1, 0);
        var description = new System.Buffers.ArrayBufferWriter<byte>();
        PgProxy.Protocol.Backend.RowDescriptionMessage.Write(description, System.Text.Encoding.UTF8, [column]);
        await backend.Pipe.Writer.WriteAsync((byte[])[.. Frame('1', []), .. Frame('t', [0, 0]), .. description.WrittenSpan, .. Frame('2', [])]);
        await backend.Output.WhenLengthAsync(5 + 6 + description.WrittenCount + 5).WaitAsync(Deadline);

        PgProxy.Protocol.Backend.FieldDescription[]? columns = state.Statements!.ColumnsOfRow();
        Assert.NotNull(columns);
        Assert.Equal("x", Assert.Single(columns).Name);
        Assert.Equal(1, columns[0].FormatCode); // the format Bind asked for
        await frontend.Pipe.Writer.CompleteAsync();
        await backend.Pipe.Writer.CompleteAsync();
        Assert.Equal(PumpStop.SourceClosed, await sending.WaitAsync(Deadline));
        Assert.Equal(PumpStop.SourceClosed, await receiving.WaitAsync(Deadline));
    }

    private static byte[] BigEndian(int value) => [(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value];

    [Fact]
    public async Task The_backend_records_transaction_status_key_data_and_parameters()
    {
        var run = new PumpRun(PumpDirection.ServerToClient);
        Task<PumpStop> pumping = run.Pump.RunAsync(CancellationToken.None);

        byte[] key = [0, 0, 0x30, 0x39, 1, 2, 3, 4];
        await run.Pipe.Writer.WriteAsync((byte[])[
            .. Frame('S', "server_version\015.18\0"u8),
            .. Frame('K', key),
            .. Frame('S', "client_encoding\0UTF8\0"u8),
            .. Frame('S', "client_encoding\0LATIN1\0"u8),
            .. Frame('Z', "T"u8),
        ]);
        await run.Pipe.Writer.CompleteAsync();

        Assert.Equal(PumpStop.SourceClosed, await pumping.WaitAsync(Deadline));
        Assert.Equal(TransactionStatus.InTransaction, run.State.TransactionStatus);
        Assert.Equal(0, run.State.OutstandingRequests);
        Assert.Equal(12345, run.State.BackendKey!.Value.ProcessId);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, run.State.BackendKey!.Value.SecretKey);
        Assert.Equal("15.18", run.State.Parameters["server_version"]);
        Assert.Equal("LATIN1", run.State.Parameters["client_encoding"]);
    }

    [Fact]
    public async Task A_requested_shutdown_ends_the_backend_pump_at_the_next_idle_point()
    {
        var run = new PumpRun(PumpDirection.ServerToClient);
        Task<PumpStop> pumping = run.Pump.RunAsync(CancellationToken.None);

        // The start-up is still unanswered: not idle yet.
        Assert.False(run.State.RequestShutdown());
        byte[] parameter = Frame('S', "application_name\0psql\0"u8);
        await run.Pipe.Writer.WriteAsync(parameter);
        await run.Output.WhenLengthAsync(parameter.Length).WaitAsync(Deadline);
        Assert.False(pumping.IsCompleted);
        await run.Pipe.Writer.WriteAsync(Frame('Z', "I"u8));

        Assert.Equal(PumpStop.IdleShutdown, await pumping.WaitAsync(Deadline));
        Assert.True(run.State.IsIdle);
    }

    private static byte[] Header(char code, int length) =>
        [(byte)code, (byte)(length >> 24), (byte)(length >> 16), (byte)(length >> 8), (byte)length];

    private static byte[] Frame(char code, ReadOnlySpan<byte> body) => [.. Header(code, body.Length + 4), .. body];

    private sealed class PumpRun
    {
        public PumpRun(PumpDirection direction, long maxMessageSize = 1 << 30, IFrameHandler? handler = null, ServerProtocolState? state = null)
            : this(direction, maxMessageSize, handler is null ? null : [handler], state)
        {
        }

        public PumpRun(PumpDirection direction, long maxMessageSize, IFrameHandler[]? handlers, ServerProtocolState? state = null)
        {
            State = state ?? new ServerProtocolState();
            Pump = new ForwardingPump(Pipe.Reader, Output, State, direction, maxMessageSize, handlers);
        }

        public Pipe Pipe { get; } = new(new PipeOptions(pauseWriterThreshold: 0));

        public WatchedStream Output { get; } = new();

        public ServerProtocolState State { get; }

        public ForwardingPump Pump { get; }
    }

    /// <summary>Takes frames of some codes, records them, and writes them on (or a replacement).</summary>
    private sealed class RecordingHandler(params byte[] codes) : IFrameHandler
    {
        private readonly byte[]? replacement;

        public RecordingHandler(byte code, byte[] replacement)
            : this(code) => this.replacement = replacement;

        public List<string> Seen { get; } = [];

        public Action? OnHandle { get; init; }

        public bool Wants(byte code) => codes.Contains(code);

        public async ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
        {
            Seen.Add(((char)code).ToString());
            OnHandle?.Invoke();
            await next.WriteAsync(replacement is null ? frame : new ReadOnlySequence<byte>(replacement), cancellationToken);
        }
    }

    /// <summary>Takes frames of some codes and writes nothing in their place.</summary>
    private sealed class DroppingHandler(params byte[] codes) : IFrameHandler
    {
        public bool Wants(byte code) => codes.Contains(code);

        public ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    /// <summary>A memory stream whose writes can be waited for: the pump's output announces what arrives.</summary>
    private sealed class WatchedStream : MemoryStream
    {
        private readonly Lock gate = new();
        private readonly List<(long Length, TaskCompletionSource Arrived)> waiters = [];

        /// <summary>Completes once at least <paramref name="length"/> bytes have been written.</summary>
        public Task WhenLengthAsync(long length)
        {
            lock (gate)
            {
                if (Length >= length)
                {
                    return Task.CompletedTask;
                }

                var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                waiters.Add((length, arrived));
                return arrived.Task;
            }
        }

        // MemoryStream sends a subclass's span writes to the array overload: that one does the work.
        public override void Write(ReadOnlySpan<byte> buffer) => Write(buffer.ToArray(), 0, buffer.Length);

        public override void Write(byte[] buffer, int offset, int count)
        {
            lock (gate)
            {
                base.Write(buffer, offset, count);
                Announce();
            }
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Write(buffer, offset, count);
            return Task.CompletedTask;
        }

        private void Announce()
        {
            foreach ((long length, TaskCompletionSource arrived) in waiters.Where(waiter => Length >= waiter.Length).ToList())
            {
                arrived.TrySetResult();
                waiters.Remove((length, arrived));
            }
        }
    }
}
