using System.Buffers;
using System.Text;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Pooling;

/// <summary>
/// What transaction pooling keeps of one client across the server connections its transactions get: its prepared
/// statements under its own names, the settings it asked for, what the connection linked now has been asked to do for
/// it, and the frame handlers that map the one onto the other (see <see cref="ToServer"/> and <see cref="ToClient"/>).
/// </summary>
internal sealed class TransactionLink
{
    private const string AbsentStatement = PreparedShape.NamePrefix + "none";
    private const string DuplicateStatement = PreparedShape.NamePrefix + "duplicate";

    private static readonly byte[] ParseComplete = PregeneratedMessages.ParseComplete.ToArray();
    private static readonly byte[] DeallocateAllComplete = CommandComplete("DEALLOCATE ALL");
    private static readonly byte[] DiscardAllComplete = CommandComplete("DISCARD ALL");
    private static readonly byte[] ResetComplete = CommandComplete("RESET");
    private static readonly byte[] ListenComplete = CommandComplete("LISTEN");
    private static readonly byte[] UnlistenComplete = CommandComplete("UNLISTEN");

    private readonly ServerProtocolState state;
    private readonly List<string> touched = [];
    private readonly List<string> sqlPrepared = [];
    private PooledServer? server;

    public TransactionLink(ServerProtocolState state, SessionSettings startup, bool mapsStatements)
    {
        ArgumentNullException.ThrowIfNull(state);
        this.state = state;
        Sequencer = state.Responses ?? throw new ArgumentException("the state has no response sequencer", nameof(state));
        Sequencer.Failed = Undo;
        Startup = startup;
        Wanted = new SessionSettings(startup.Names.Select(name => new KeyValuePair<string, string>(name, startup.TryGet(name, out string value) ? value : "")));
        MapsStatements = mapsStatements;
        ToServer = new ToServerHandler(this);
        ToClient = new ToClientHandler(this);
    }

    public ResponseSequencer Sequencer { get; }

    /// <summary>The client's start-up settings: what RESET ALL and DISCARD ALL go back to.</summary>
    public SessionSettings Startup { get; }

    /// <summary>The settings the client has asked for so far.</summary>
    public SessionSettings Wanted { get; }

    public ClientStatements Statements { get; } = new();

    /// <summary>Where the client's LISTEN and UNLISTEN go: PgProxy's listening connection of the database.</summary>
    public IClientListens? Listens { get; set; }

    /// <summary>Whether named statements are mapped (<c>prepared-statements</c> above 0).</summary>
    public bool MapsStatements { get; }

    public IFrameHandler ToServer { get; }

    public IFrameHandler ToClient { get; }

    /// <summary>The settings whose values are read back when the link ends: those the client changed, or all after a RESET ALL.</summary>
    public string[] SettingsToReadBack(SessionSettings onServer)
    {
        ArgumentNullException.ThrowIfNull(onServer);
        IEnumerable<string> names = touchedAll ? [.. touched, .. Wanted.Names, .. onServer.Names, .. Startup.Names] : touched;
        return [.. names.Distinct(StringComparer.OrdinalIgnoreCase)];
    }

    /// <summary>SQL-level statements the client prepared in this link's transaction, deallocated as it ends.</summary>
    public IReadOnlyList<string> SqlPrepared => sqlPrepared;

    /// <summary>Whether the client changed settings in this link (a SET, RESET, RESET ALL or DISCARD ALL went to the server).</summary>
    public bool ChangedSettings => touchedAll || touched.Count > 0;

    private bool touchedAll;

    /// <summary>The client now has <paramref name="linked"/>: nothing is owed on it yet.</summary>
    public void Begin(PooledServer linked)
    {
        ArgumentNullException.ThrowIfNull(linked);
        lock (Sequencer.Gate)
        {
            server = linked;
            linked.Statements.BeginLink();
            Statements.UnnamedOnLink = false;
            touched.Clear();
            touchedAll = false;
            sqlPrepared.Clear();
            transactionBegun = false;
        }

        Sequencer.Reset();
    }

    /// <summary>The link has ended: the connection goes back to its pool.</summary>
    public void End()
    {
        lock (Sequencer.Gate)
        {
            server = null;
        }
    }

    private void Undo(StatementUndo undo)
    {
        // Called under the gate, by the sequencer.
        if (undo.ClientName is { } name)
        {
            Statements.RemoveIf(name, undo.Shape);
        }

        if (undo.PreparedOnServer)
        {
            server?.Statements.Remove(undo.Shape.ServerName);
        }
    }

    private static byte[] CommandComplete(string tag)
    {
        var output = new ArrayBufferWriter<byte>(32);
        CommandCompleteMessage.Write(output, Encoding.UTF8, tag);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Toward the server: Parse, Bind, Describe and Close of named statements under PgProxy's names, each prepared on
    /// the connection before its first use there; the client's unnamed statement again where a Bind needs it; and the
    /// simple Query's statements that act on the whole session (see <see cref="PooledQueryChecker"/>).
    /// </summary>
    private sealed class ToServerHandler(TransactionLink link) : IFrameHandler
    {
        private readonly ArrayBufferWriter<byte> scratch = new(256);
        private byte[] unnamed = new byte[256];

        // A Parse is looked at even when names are not mapped: its text may be a SET or a LISTEN.
        public bool Wants(byte code) => code is (byte)'Q' or (byte)'P' || (link.MapsStatements && code is (byte)'B' or (byte)'D' or (byte)'C');

        private PooledQueryCheck? prechecked; // the verdict on the text at hand, when taken before (LISTEN)
        private string? listenFailure; // why the listening connection could not LISTEN for the text at hand

        public ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
        {
            ReadOnlySequence<byte> body = frame.Slice(MessageHeader.Size);
            byte[]? rented = null;
            ReadOnlySpan<byte> bytes;
            if (body.IsSingleSegment)
            {
                bytes = body.FirstSpan;
            }
            else
            {
                rented = ArrayPool<byte>.Shared.Rent(checked((int)body.Length));
                body.CopyTo(rented);
                bytes = rented.AsSpan(0, (int)body.Length);
            }

            try
            {
                if (link.Listens is not null && code is (byte)'Q' or (byte)'P' && PooledQueryChecker.MayListen(TextOf(code, bytes)))
                {
                    return ListenFirstAsync(code, bytes.ToArray(), frame, next, cancellationToken);
                }

                scratch.ResetWrittenCount();
                bool rewritten = code switch
                {
                    (byte)'Q' => Query(bytes),
                    (byte)'P' => Parse(bytes),
                    (byte)'B' => Bind(bytes),
                    (byte)'D' => Describe(bytes),
                    _ => Close(bytes),
                };

                return rewritten ? WriteScratchAsync(next, cancellationToken) : next.WriteAsync(frame, cancellationToken);
            }
            finally
            {
                if (rented is not null)
                {
                    ArrayPool<byte>.Shared.Return(rented);
                }
            }
        }

        /// <summary>The SQL text of a Query or Parse body (empty when malformed: the server says so).</summary>
        private static ReadOnlySpan<byte> TextOf(byte code, ReadOnlySpan<byte> body)
        {
            if (code == (byte)'P')
            {
                int nameEnd = body.IndexOf((byte)0);
                body = nameEnd < 0 ? default : body[(nameEnd + 1)..];
            }

            return body[..Math.Max(body.IndexOf((byte)0), 0)];
        }

        /// <summary>
        /// A text of LISTENs and UNLISTENs: the listening connection acts first, in order (so a notification sent once
        /// the client has its answer reaches it), and a stand-in goes to the linked connection for the answer.
        /// </summary>
        private async ValueTask ListenFirstAsync(byte code, byte[] body, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
        {
            PooledQueryCheck check = PooledQueryChecker.Check(TextOf(code, body));
            string? failure = null;
            if (check.Effect == PooledQueryEffect.Listen)
            {
                foreach (ListenChange change in check.Listens!)
                {
                    if (!change.Listen)
                    {
                        link.Listens!.Unlisten(change.Channel);
                    }
                    else if ((failure = await link.Listens!.ListenAsync([change.Channel!], cancellationToken).ConfigureAwait(false)) is not null)
                    {
                        break;
                    }
                }
            }

            prechecked = check;
            listenFailure = failure;
            try
            {
                scratch.ResetWrittenCount();
                bool rewritten = code == (byte)'Q' ? Query(body) : Parse(body);
                if (rewritten)
                {
                    await WriteScratchAsync(next, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await next.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                prechecked = null;
                listenFailure = null;
            }
        }

        // Frames are written one by one: the sequencer learns what each is as the pump observes it.
        private async ValueTask WriteScratchAsync(IFrameSink next, CancellationToken cancellationToken)
        {
            ReadOnlyMemory<byte> written = scratch.WrittenMemory;
            int position = 0;
            foreach ((int length, Pending pending) in plan)
            {
                if (pending.Action is { } action)
                {
                    link.Sequencer.NextIs(action, pending.ReplacedCode, pending.Replacement, pending.Undo, pending.ServerName, pending.ClientName);
                }

                await next.WriteAsync(new ReadOnlySequence<byte>(written.Slice(position, length)), cancellationToken).ConfigureAwait(false);
                position += length;
            }

            plan.Clear();
        }

        private readonly List<(int Length, Pending Pending)> plan = [];

        private readonly record struct Pending(ResponseAction? Action, byte ReplacedCode = 0, byte[]? Replacement = null, StatementUndo? Undo = null, string? ServerName = null, string? ClientName = null);

        private void Add(Pending pending, int start) => plan.Add((scratch.WrittenCount - start, pending));

        private bool Query(ReadOnlySpan<byte> body)
        {
            ReadOnlySpan<byte> text = body[..Math.Max(body.IndexOf((byte)0), 0)];
            lock (link.Sequencer.Gate)
            {
                // A simple Query ends the unnamed statement.
                link.Statements.Unnamed = null;
            }

            PooledQueryCheck check = prechecked ?? PooledQueryChecker.Check(text);
            link.TouchSettings(check.Settings);
            link.NoteBegin(text);
            if (Act(check) is not { } standIn)
            {
                return false;
            }

            // The stand-in's answer carries the client's command tag where it differs.
            Pending pending = check.Effect switch
            {
                PooledQueryEffect.DeallocateAll => new Pending(ResponseAction.Replace, (byte)'C', DeallocateAllComplete),
                PooledQueryEffect.DiscardAll => new Pending(ResponseAction.Replace, (byte)'C', DiscardAllComplete),
                PooledQueryEffect.ResetAll => new Pending(ResponseAction.Replace, (byte)'C', ResetComplete),
                PooledQueryEffect.Listen when listenFailure is null && check.Listens!.Count == 1 =>
                    new Pending(ResponseAction.Replace, (byte)'C', check.Listens[0].Listen ? ListenComplete : UnlistenComplete),
                _ => new Pending(null),
            };
            WriteQuery(standIn, pending);
            return true;
        }

        /// <summary>
        /// Acts on a statement that concerns the whole session, for this client only; returns the SQL that stands in
        /// for it on the server, or null when it goes as it is.
        /// </summary>
        private string? Act(PooledQueryCheck check)
        {
            if (check.Prepared is { } prepared)
            {
                // In a transaction block the client keeps its connection until the block ends: the statement works
                // until then, and is deallocated as the link ends.
                // A BEGIN sent in this link counts, answered or not: drivers such as Npgsql send it in one batch with
                // the statement after it.
                if (link.state.TransactionStatus == TransactionStatus.Idle && !link.transactionBegun)
                {
                    return RaiseQuery(PooledQueryChecker.PrepareOutsideTransaction);
                }

                link.sqlPrepared.AddRange(prepared);
            }

            if (check.Deallocated is { } deallocated)
            {
                link.sqlPrepared.RemoveAll(name => deallocated.Contains(name, StringComparer.Ordinal));
            }

            switch (check.Effect)
            {
                case PooledQueryEffect.Refuse:
                    return RaiseQuery(check.Refusal!);
                case PooledQueryEffect.Listen:
                    // Done already by the listening connection (ListenFirstAsync); one stand-in per statement answers.
                    return listenFailure is { } failure ? RaiseQuery(failure) : string.Join("; ", Enumerable.Repeat(NothingQuery, check.Listens!.Count));
                case PooledQueryEffect.DeallocateAll:
                    lock (link.Sequencer.Gate)
                    {
                        link.Statements.Clear();
                    }

                    return NothingQuery;
                case PooledQueryEffect.DiscardAll or PooledQueryEffect.ResetAll when link.state.TransactionStatus == TransactionStatus.Idle || check.Effect == PooledQueryEffect.ResetAll:
                    if (check.Effect == PooledQueryEffect.DiscardAll)
                    {
                        lock (link.Sequencer.Gate)
                        {
                            link.Statements.Clear();
                        }

                        link.Listens?.Unlisten(null); // DISCARD ALL includes UNLISTEN *
                    }

                    link.Wanted.CopyFrom(link.Startup);
                    link.TouchAll();
                    return link.Startup.ResetAllTo();
                default:
                    return null; // DISCARD ALL in a transaction block: the server's own error
            }
        }

        private const string NothingQuery = "DO $pgproxy$BEGIN END$pgproxy$";

        private void WriteQuery(string text, Pending pending)
        {
            int start = scratch.WrittenCount;
            Protocol.Frontend.QueryMessages.WriteQuery(scratch, Encoding.UTF8, text);
            Add(pending, start);
        }

        /// <summary>A statement the server fails with 0A000 and this message: a real error, so a transaction block aborts as it should.</summary>
        private static string RaiseQuery(string message)
        {
            var sql = new StringBuilder("DO $pgproxy$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = ");
            SessionSettings.Literal(sql, message);
            return sql.Append("; END$pgproxy$").ToString();
        }

        private bool Parse(ReadOnlySpan<byte> body)
        {
            int nameEnd = body.IndexOf((byte)0);
            if (nameEnd < 0)
            {
                return false; // malformed: the server says so
            }

            ReadOnlySpan<byte> definition = body[(nameEnd + 1)..];
            int textEnd = definition.IndexOf((byte)0);
            byte[]? replaced = null;
            if (textEnd >= 0)
            {
                // Drivers such as Npgsql send every statement this way: the same checks as a simple Query's, acted on
                // when the statement is parsed. The stand-in's command tag is DO.
                PooledQueryCheck check = prechecked ?? PooledQueryChecker.Check(definition[..textEnd]);
                link.TouchSettings(check.Settings);
                link.NoteBegin(definition[..textEnd]);
                if (Act(check) is { } standIn)
                {
                    replaced = [.. Encoding.UTF8.GetBytes(standIn), 0, .. definition[(textEnd + 1)..]];
                    definition = replaced;
                }
            }

            if (!link.MapsStatements)
            {
                // Names go as they are (prepared-statements: 0); only a stand-in changes the text.
                if (replaced is null)
                {
                    return false;
                }

                int start = scratch.WrittenCount;
                WriteParse(Encoding.UTF8.GetString(body[..nameEnd]), definition);
                Add(new Pending(null), start);
                return true;
            }

            lock (link.Sequencer.Gate)
            {
                if (nameEnd == 0)
                {
                    if (unnamed.Length < definition.Length)
                    {
                        unnamed = new byte[definition.Length];
                    }

                    definition.CopyTo(unnamed);
                    link.Statements.Unnamed = unnamed.AsMemory(0, definition.Length);
                    link.Statements.UnnamedOnLink = true;
                    if (replaced is null)
                    {
                        return false;
                    }

                    int start = scratch.WrittenCount;
                    WriteParse("", definition);
                    Add(new Pending(null), start);
                    return true;
                }

                Span<char> nameChars = stackalloc char[Math.Min(nameEnd, 256)];
                if (!TryChars(body[..nameEnd], ref nameChars, out string? longName))
                {
                    return false;
                }

                string name = longName ?? new string(nameChars);
                PooledServer linked = link.server!;
                if (link.Statements.Contains(name))
                {
                    // PostgreSQL's own error, from the server (so a transaction block aborts), with the client's name in it.
                    int start = scratch.WrittenCount;
                    WriteParse(DuplicateStatement, [0, 0, 0]);
                    Add(new Pending(ResponseAction.Drop, ServerName: DuplicateStatement, ClientName: name), start);
                    start = scratch.WrittenCount;
                    WriteParse(DuplicateStatement, [0, 0, 0]);
                    Add(new Pending(ResponseAction.Forward, ServerName: DuplicateStatement, ClientName: name), start);
                    return true;
                }

                PreparedShape shape = PreparedShape.Of(definition);
                link.Statements.Add(name, shape);
                if (linked.Statements.Touch(shape.ServerName))
                {
                    // Prepared there already (by this client or another): a Close of no statement stands in, and its
                    // CloseComplete becomes the ParseComplete the client is owed.
                    int start = scratch.WrittenCount;
                    WriteClose((byte)'S', AbsentStatement);
                    Add(new Pending(ResponseAction.Replace, (byte)'3', ParseComplete, new StatementUndo(name, shape, PreparedOnServer: false)), start);
                    return true;
                }

                MakeRoomAndPrepare(linked, shape, name, forClient: true);
                return true;
            }
        }

        /// <summary>Prepares <paramref name="shape"/> on the connection, closing the least recently used first if it is full.</summary>
        private void MakeRoomAndPrepare(PooledServer linked, PreparedShape shape, string clientName, bool forClient)
        {
            if (linked.Statements.Add(shape.ServerName) is { } evicted)
            {
                int closing = scratch.WrittenCount;
                WriteClose((byte)'S', evicted);
                Add(new Pending(ResponseAction.Drop), closing);
            }

            int start = scratch.WrittenCount;
            WriteParse(shape.ServerName, shape.Definition);
            var undo = new StatementUndo(forClient ? clientName : null, shape, PreparedOnServer: true);
            Add(new Pending(forClient ? ResponseAction.Forward : ResponseAction.Drop, Undo: undo, ServerName: shape.ServerName, ClientName: clientName), start);
        }

        private bool Bind(ReadOnlySpan<byte> body)
        {
            int portalEnd = body.IndexOf((byte)0);
            if (portalEnd < 0)
            {
                return false;
            }

            ReadOnlySpan<byte> afterPortal = body[(portalEnd + 1)..];
            int nameEnd = afterPortal.IndexOf((byte)0);
            if (nameEnd < 0)
            {
                return false;
            }

            lock (link.Sequencer.Gate)
            {
                if (nameEnd == 0)
                {
                    if (link.Statements.Unnamed is not { } definition || link.Statements.UnnamedOnLink)
                    {
                        return false;
                    }

                    // The unnamed statement was parsed on another connection: again here, first.
                    int start = scratch.WrittenCount;
                    WriteParse("", definition.Span);
                    Add(new Pending(ResponseAction.Drop), start);
                    link.Statements.UnnamedOnLink = true;
                    start = scratch.WrittenCount;
                    WriteRenamed((byte)'B', default, null, body);
                    Add(new Pending(null), start);
                    return true;
                }

                if (!TryMapped(afterPortal[..nameEnd], out PreparedShape? shape, out string? clientName))
                {
                    return false;
                }

                int bind = Ensure(shape, clientName);
                WriteRenamed((byte)'B', body[..(portalEnd + 1)], shape.ServerName, afterPortal[(nameEnd + 1)..]);
                Add(new Pending(ResponseAction.Forward, ServerName: shape.ServerName, ClientName: clientName), bind);
                return true;
            }
        }

        private bool Describe(ReadOnlySpan<byte> body)
        {
            if (body.Length < 2 || body[0] != (byte)'S')
            {
                return false;
            }

            ReadOnlySpan<byte> name = body[1..^1];
            lock (link.Sequencer.Gate)
            {
                if (name.IsEmpty || !TryMapped(name, out PreparedShape? shape, out string? clientName))
                {
                    return false;
                }

                int describe = Ensure(shape, clientName);
                WriteRenamed((byte)'D', "S"u8, shape.ServerName, default);
                Add(new Pending(ResponseAction.Forward, ServerName: shape.ServerName, ClientName: clientName), describe);
                return true;
            }
        }

        private bool Close(ReadOnlySpan<byte> body)
        {
            if (body.Length < 2 || body[0] != (byte)'S')
            {
                return false;
            }

            ReadOnlySpan<byte> name = body[1..^1];
            lock (link.Sequencer.Gate)
            {
                if (name.IsEmpty)
                {
                    link.Statements.Unnamed = null;
                    return false;
                }

                if (!TryMapped(name, out _, out string? clientName))
                {
                    return false;
                }

                // Only the client's name goes: the connection keeps the statement for whoever prepares it next.
                link.Statements.Remove(clientName);
                int start = scratch.WrittenCount;
                WriteClose((byte)'S', AbsentStatement);
                Add(new Pending(null), start);
                return true;
            }
        }

        /// <summary>Prepares the statement on the connection unless it is there; returns where the client's own message starts.</summary>
        private int Ensure(PreparedShape shape, string clientName)
        {
            PooledServer linked = link.server!;
            if (!linked.Statements.Touch(shape.ServerName))
            {
                MakeRoomAndPrepare(linked, shape, clientName, forClient: false);
            }

            return scratch.WrittenCount;
        }

        private bool TryMapped(ReadOnlySpan<byte> nameBytes, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PreparedShape? shape, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? clientName)
        {
            shape = null;
            clientName = null;
            Span<char> chars = stackalloc char[Math.Min(nameBytes.Length, 256)];
            if (!TryChars(nameBytes, ref chars, out string? longName))
            {
                return false;
            }

            ReadOnlySpan<char> name = longName is null ? chars : longName.AsSpan();
            if (!link.Statements.TryGet(name, out PreparedShape found))
            {
                return false; // not one of the client's: the server's own error names it
            }

            shape = found;
            clientName = longName ?? new string(chars);
            return true;
        }

        private static bool TryChars(ReadOnlySpan<byte> utf8, ref Span<char> chars, out string? longName)
        {
            longName = null;
            if (utf8.Length > chars.Length)
            {
                longName = Encoding.UTF8.GetString(utf8);
                return true;
            }

            if (!Encoding.UTF8.TryGetChars(utf8, chars, out int written))
            {
                return false;
            }

            chars = chars[..written];
            return true;
        }

        private void WriteParse(string name, ReadOnlySpan<byte> definition)
        {
            int nameLength = Encoding.UTF8.GetByteCount(name);
            MessageWriter writer = MessageWriter.Start(scratch, (byte)'P', nameLength + 1 + definition.Length);
            writer.WriteCString(name, Encoding.UTF8);
            writer.WriteBytes(definition);
            writer.Complete();
        }

        private void WriteClose(byte kind, string name)
        {
            MessageWriter writer = MessageWriter.Start(scratch, (byte)'C', 1 + Encoding.UTF8.GetByteCount(name) + 1);
            writer.WriteByte(kind);
            writer.WriteCString(name, Encoding.UTF8);
            writer.Complete();
        }

        /// <summary>A frame of <paramref name="before"/>, the name (none when null) and <paramref name="after"/>.</summary>
        private void WriteRenamed(byte code, ReadOnlySpan<byte> before, string? name, ReadOnlySpan<byte> after)
        {
            int nameLength = name is null ? 0 : Encoding.UTF8.GetByteCount(name) + 1;
            MessageWriter writer = MessageWriter.Start(scratch, code, before.Length + nameLength + after.Length);
            writer.WriteBytes(before);
            if (name is not null)
            {
                writer.WriteCString(name, Encoding.UTF8);
            }

            writer.WriteBytes(after);
            writer.Complete();
        }
    }

    private void TouchSettings(IReadOnlyList<string>? names)
    {
        if (names is not null)
        {
            touched.AddRange(names);
        }
    }

    private void TouchAll() => touchedAll = true;

    private bool transactionBegun;

    private void NoteBegin(ReadOnlySpan<byte> text)
    {
        if (PooledQueryChecker.BeginsTransaction(text))
        {
            transactionBegun = true;
        }
    }

    /// <summary>
    /// Toward the client: the answers to PgProxy's own requests taken out, a stand-in's answer replaced by the one the
    /// client is owed, and PgProxy's statement names in error texts given back as the client's.
    /// </summary>
    private sealed class ToClientHandler(TransactionLink link) : IFrameHandler
    {
        private readonly ArrayBufferWriter<byte> scratch = new(256);
        private ResponseDecision decision;

        public bool Wants(byte code)
        {
            decision = link.Sequencer.Decide(code);
            return decision.Action != ResponseAction.Forward || decision.MapsError;
        }

        public ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
        {
            ResponseDecision now = decision;
            switch (now.Action)
            {
                case ResponseAction.Drop:
                    return ValueTask.CompletedTask;
                case ResponseAction.Replace:
                    return next.WriteAsync(new ReadOnlySequence<byte>(now.Replacement!), cancellationToken);
            }

            scratch.ResetWrittenCount();
            if (!ErrorNames.TryRename(frame, now.ServerName!, now.ClientName!, scratch))
            {
                return next.WriteAsync(frame, cancellationToken);
            }

            return next.WriteAsync(new ReadOnlySequence<byte>(scratch.WrittenMemory), cancellationToken);
        }
    }
}

/// <summary>Where a transaction-pooling client's LISTEN and UNLISTEN are done for it.</summary>
internal interface IClientListens
{
    /// <summary>Listens on <paramref name="channels"/> for the client; null once done, or why it could not be.</summary>
    Task<string?> ListenAsync(IReadOnlyList<string> channels, CancellationToken cancellationToken);

    /// <summary>Stops listening on <paramref name="channel"/> for the client, or on every channel when it is null.</summary>
    void Unlisten(string? channel);
}

/// <summary>Gives back a client's statement name where an ErrorResponse names PgProxy's.</summary>
internal static class ErrorNames
{
    /// <summary>Writes <paramref name="frame"/> with every <paramref name="from"/> in its fields replaced; false when none is there.</summary>
    public static bool TryRename(in ReadOnlySequence<byte> frame, string from, string to, ArrayBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        byte[] bytes = frame.ToArray();
        byte[] fromBytes = Encoding.UTF8.GetBytes(from);
        ReadOnlySpan<byte> body = bytes.AsSpan(MessageHeader.Size);
        if (body.IndexOf(fromBytes) < 0)
        {
            return false;
        }

        byte[] toBytes = Encoding.UTF8.GetBytes(to);
        var renamed = new ArrayBufferWriter<byte>(bytes.Length + 64);
        while (true)
        {
            int at = body.IndexOf(fromBytes);
            if (at < 0)
            {
                renamed.Write(body);
                break;
            }

            renamed.Write(body[..at]);
            renamed.Write(toBytes);
            body = body[(at + fromBytes.Length)..];
        }

        MessageWriter writer = MessageWriter.Start(output, bytes[0], renamed.WrittenCount);
        writer.WriteBytes(renamed.WrittenSpan);
        writer.Complete();
        return true;
    }
}
