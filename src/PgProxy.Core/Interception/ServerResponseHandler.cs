using System.Buffers;
using System.Collections.Concurrent;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
using PgProxy.Abstractions;
using PgProxy.Core.Sessions;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Interception;

/// <summary>
/// The first handler from the server: takes the responses to the proxy's own metadata queries away from the client,
/// and tidies the error of a refused query. Which responses are diverted is decided by response group (the messages up
/// to and including one ReadyForQuery), registered by the frontend before it sends the request. It wants nothing
/// between diversions, so the response interceptors after it see only the client's responses.
/// </summary>
internal sealed class ServerResponseHandler(ServerProtocolState state, SessionContext context) : IFrameHandler
{
    private const byte ParseComplete = (byte)BackendMessageCode.ParseComplete;
    private const byte BindComplete = (byte)BackendMessageCode.BindComplete;

    private readonly ConcurrentQueue<Diversion> diversions = new();
    private readonly List<byte[]> held = [];
    private Diversion? active;

    /// <summary>Registers the response group <paramref name="group"/> as a metadata query's; completes with its rows.</summary>
    public Task<UpstreamQueryResult> ExpectMetadataResult(long group)
    {
        var diversion = new Diversion(group, DiversionKind.Metadata, null, null);
        diversions.Enqueue(diversion);
        return diversion.Rows.Task;
    }

    /// <summary>Registers the response group <paramref name="group"/> as holding a refusal raised by the server on the proxy's behalf.</summary>
    public void ExpectRefusal(long group, bool extended, string sqlState, string message) =>
        diversions.Enqueue(new Diversion(group, extended ? DiversionKind.ExtendedRefusal : DiversionKind.SimpleRefusal, sqlState, message));

    public bool Wants(byte code) => Current() is not null;

    public async ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
    {
        ReadOnlySequence<byte> body = frame.Slice(MessageHeader.Size);
        Diversion diversion = Current()!;
        if (code == (byte)BackendMessageCode.ReadyForQuery)
        {
            await FlushHeldAsync(next, held.Count, cancellationToken).ConfigureAwait(false);
            if (diversion.Kind == DiversionKind.Metadata)
            {
                diversion.Complete();
            }
            else
            {
                await next.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            }

            // The pump counts this ReadyForQuery once the handlers return, which closes the group.
            active = null;
            return;
        }

        switch (diversion.Kind)
        {
            case DiversionKind.Metadata:
                diversion.Collect(code, body, context.ClientEncoding);
                if (code == (byte)BackendMessageCode.ParameterStatus)
                {
                    await next.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
                }

                return;
            case DiversionKind.ExtendedRefusal when code is ParseComplete or BindComplete:
                // Possibly the completions of the proxy's own Parse and Bind: decided when the error arrives.
                held.Add(frame.ToArray());
                return;
            default:
                if (code == (byte)BackendMessageCode.ErrorResponse && diversion.IsOwnError(body, context.ClientEncoding, out byte[]? tidy))
                {
                    bool ownCompletions = diversion.Kind == DiversionKind.ExtendedRefusal
                        && held.Count >= 2 && held[^2][0] == ParseComplete && held[^1][0] == BindComplete;
                    await FlushHeldAsync(next, ownCompletions ? held.Count - 2 : held.Count, cancellationToken).ConfigureAwait(false);
                    await next.WriteAsync(new ReadOnlySequence<byte>(tidy!), cancellationToken).ConfigureAwait(false);
                    return;
                }

                await FlushHeldAsync(next, held.Count, cancellationToken).ConfigureAwait(false);
                await next.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
                return;
        }
    }

    /// <summary>Fails every metadata query still waiting: the session is ending.</summary>
    public void Abandon()
    {
        active?.Fail(new UpstreamQueryException("the session ended before the metadata query was answered"));
        while (diversions.TryDequeue(out Diversion? diversion))
        {
            diversion.Fail(new UpstreamQueryException("the session ended before the metadata query was answered"));
        }
    }

    private Diversion? Current()
    {
        if (active is null && diversions.IsEmpty)
        {
            return null; // the common case, checked for every frame from the server: no lock, no peek
        }

        long group = state.CurrentResponseGroup;
        if (active is { } current && current.Group == group)
        {
            return current;
        }

        if (diversions.TryPeek(out Diversion? next) && next.Group == group && diversions.TryDequeue(out next))
        {
            active = next;
            return next;
        }

        return null;
    }

    private async ValueTask FlushHeldAsync(IFrameSink next, int count, CancellationToken cancellationToken)
    {
        for (int i = 0; i < count; i++)
        {
            await next.WriteAsync(new ReadOnlySequence<byte>(held[i]), cancellationToken).ConfigureAwait(false);
        }

        held.Clear();
    }

    private enum DiversionKind
    {
        Metadata,
        SimpleRefusal,
        ExtendedRefusal,
    }

    private sealed class Diversion(long group, DiversionKind kind, string? sqlState, string? message)
    {
        private readonly List<IReadOnlyList<string?>> rows = [];
        private string[] columns = [];
        private UpstreamQueryException? error;

        public long Group { get; } = group;

        public DiversionKind Kind { get; } = kind;

        public TaskCompletionSource<UpstreamQueryResult> Rows { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Collect(byte code, ReadOnlySequence<byte> body, System.Text.Encoding encoding)
        {
            switch ((BackendMessageCode)code)
            {
                case BackendMessageCode.RowDescription when BackendMessages.TryReadColumnNames(body, encoding, out string[] names):
                    columns = names;
                    break;
                case BackendMessageCode.DataRow when BackendMessages.TryReadTextRow(body, encoding, out string?[] values):
                    rows.Add(values);
                    break;
                case BackendMessageCode.ErrorResponse:
                    List<KeyValuePair<char, string>> fields = BackendMessages.ReadFields(body, encoding);
                    error ??= new UpstreamQueryException(
                        fields.FirstOrDefault(f => f.Key == 'C').Value ?? "XX000",
                        fields.FirstOrDefault(f => f.Key == 'M').Value ?? "the metadata query failed");
                    break;
            }
        }

        public void Complete()
        {
            if (error is not null)
            {
                Rows.TrySetException(error);
            }
            else
            {
                Rows.TrySetResult(new UpstreamQueryResult(columns, rows));
            }
        }

        public void Fail(Exception exception) => Rows.TrySetException(exception);

        /// <summary>
        /// Whether an ErrorResponse is the refusal the proxy asked the server to raise (same SQLSTATE and message, from
        /// an inline code block). If so, <paramref name="tidy"/> is the error with just severity, SQLSTATE and message:
        /// the client learns nothing of how the refusal was raised.
        /// </summary>
        public bool IsOwnError(ReadOnlySequence<byte> body, System.Text.Encoding encoding, out byte[]? tidy)
        {
            tidy = null;
            List<KeyValuePair<char, string>> fields = BackendMessages.ReadFields(body, encoding);
            if (fields.FirstOrDefault(f => f.Key == 'C').Value != sqlState || fields.FirstOrDefault(f => f.Key == 'M').Value != message)
            {
                return false;
            }

            var writer = new ArrayBufferWriter<byte>();
            BackendMessages.WriteFields(writer, BackendMessageCode.ErrorResponse, encoding, fields.Where(f => f.Key is 'S' or 'V' or 'C' or 'M'));
            tidy = writer.WrittenSpan.ToArray();
            return true;
        }
    }
}
