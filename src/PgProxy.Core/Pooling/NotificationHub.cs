using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Server;
using PgProxy.Protocol;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Pooling;

/// <summary>A client session that listens: it is handed each NotificationResponse of a channel it listens on.</summary>
internal interface INotificationTarget
{
    /// <summary>A whole NotificationResponse frame, shared between the targets: not to be changed.</summary>
    void Deliver(byte[] frame);
}

/// <summary>
/// LISTEN/NOTIFY under transaction pooling, for one database: one server connection of its own listens on every channel
/// some client of the database listens on, and each notification it receives goes to those clients. A pooled
/// connection cannot listen for a client: it serves another client in the next transaction.
/// </summary>
/// <remarks>
/// The connection is opened on the first LISTEN, with the credentials of the pool of that client's user, and closed
/// when no channel is left. If it is lost, it is opened again and listens again; notifications sent in between are not
/// received (documented).
/// </remarks>
internal sealed class NotificationHub : IAsyncDisposable
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

    private readonly Lock sync = new();
    private readonly Dictionary<string, HashSet<INotificationTarget>> channels = new(StringComparer.Ordinal);
    private readonly HashSet<string> listening = new(StringComparer.Ordinal); // channels the connection listens on now
    private readonly SemaphoreSlim commands = new(1, 1); // one command on the connection at a time, and its opening
    private readonly Queue<TaskCompletionSource<string?>> answers = new();
    private readonly Func<CancellationToken, Task<PooledServer>> open;
    private readonly ILogger logger;
    private readonly TimeSpan timeout;
    private readonly CancellationTokenSource stopping = new();
    private PooledServer? server;
    private Task? reading;
    private int retrying;

    public NotificationHub(string database, Func<CancellationToken, Task<PooledServer>> open, ILogger logger, TimeSpan timeout)
    {
        Database = database;
        this.open = open;
        this.logger = logger;
        this.timeout = timeout;
    }

    public string Database { get; }

    /// <summary>The channels some client listens on now.</summary>
    public int Channels
    {
        get
        {
            lock (sync)
            {
                return channels.Count;
            }
        }
    }

    /// <summary>
    /// <paramref name="target"/> listens on <paramref name="names"/> from now on. Completes once the connection listens
    /// on each, so a notification sent after it is received; returns null then, or why it could not.
    /// </summary>
    public async Task<string?> ListenAsync(INotificationTarget target, IReadOnlyList<string> names, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(names);
        lock (sync)
        {
            foreach (string name in names)
            {
                if (!channels.TryGetValue(name, out HashSet<INotificationTarget>? targets))
                {
                    channels[name] = targets = [];
                }

                targets.Add(target);
            }
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping.Token);
        deadline.CancelAfter(timeout);
        try
        {
            await commands.WaitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return $"the listening connection of database \"{Database}\" is busy: timed out";
        }

        try
        {
            if (reading is { IsCompleted: true })
            {
                await CloseAsync().ConfigureAwait(false); // lost, and not opened again yet
            }

            if (server is null)
            {
                // Opened, then listening on every channel wanted now (these, and those of a connection lost before).
                server = await open(deadline.Token).ConfigureAwait(false);
                reading = ReadAsync(server);
                Log.NotificationListenerOpened(logger, Database);
            }

            foreach (string name in names)
            {
                if (!IsListening(name) && await RunAsync($"LISTEN {Quoted(name)}", deadline.Token).ConfigureAwait(false) is { } error)
                {
                    return error;
                }

                lock (sync)
                {
                    listening.Add(name);
                }
            }

            return await ListenAgainAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or UpstreamUnreachableException or ServerLoginException)
        {
            return $"the listening connection of database \"{Database}\" failed: {(e is ServerLoginException login ? login.Error.Message : e.Message)}";
        }
        finally
        {
            commands.Release();
        }
    }

    /// <summary><paramref name="target"/> no longer listens on <paramref name="name"/>, or on any channel when it is null.</summary>
    public void Unlisten(INotificationTarget target, string? name)
    {
        List<string>? emptied = null;
        lock (sync)
        {
            foreach ((string channel, HashSet<INotificationTarget> targets) in channels)
            {
                if ((name is null || channel == name) && targets.Remove(target) && targets.Count == 0)
                {
                    (emptied ??= []).Add(channel);
                }
            }

            foreach (string channel in emptied ?? [])
            {
                channels.Remove(channel);
            }
        }

        if (emptied is not null)
        {
            // The client stops receiving at once; the connection is told in the background.
            _ = UnlistenOnServerAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        await commands.WaitAsync().ConfigureAwait(false);
        try
        {
            await CloseAsync().ConfigureAwait(false);
        }
        finally
        {
            commands.Release();
        }
    }

    private bool IsListening(string name)
    {
        lock (sync)
        {
            return listening.Contains(name);
        }
    }

    /// <summary>Under <see cref="commands"/>: the channels wanted that the connection does not listen on (after it was lost and opened again).</summary>
    private async Task<string?> ListenAgainAsync(CancellationToken cancellationToken)
    {
        string[] missing;
        lock (sync)
        {
            missing = [.. channels.Keys.Where(name => !listening.Contains(name))];
        }

        foreach (string name in missing)
        {
            if (await RunAsync($"LISTEN {Quoted(name)}", cancellationToken).ConfigureAwait(false) is { } error)
            {
                return error;
            }

            lock (sync)
            {
                listening.Add(name);
            }
        }

        return null;
    }

    private async Task UnlistenOnServerAsync()
    {
        try
        {
            await commands.WaitAsync(stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            string[] stale;
            bool none;
            lock (sync)
            {
                stale = [.. listening.Where(name => !channels.ContainsKey(name))];
                none = channels.Count == 0;
            }

            if (server is null)
            {
                return;
            }

            if (none)
            {
                await CloseAsync().ConfigureAwait(false);
                return;
            }

            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
            deadline.CancelAfter(timeout);
            foreach (string name in stale)
            {
                await RunAsync($"UNLISTEN {Quoted(name)}", deadline.Token).ConfigureAwait(false);
                lock (sync)
                {
                    listening.Remove(name);
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // The connection is gone: it is opened again only if a channel is wanted.
        }
        finally
        {
            commands.Release();
        }
    }

    /// <summary>Under <see cref="commands"/>: one simple Query on the connection, answered when its ReadyForQuery arrives (read by <see cref="ReadAsync"/>).</summary>
    private async Task<string?> RunAsync(string sql, CancellationToken cancellationToken)
    {
        PooledServer connection = server ?? throw new IOException("no listening connection");
        var answer = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (sync)
        {
            answers.Enqueue(answer);
        }

        var message = new ArrayBufferWriter<byte>(sql.Length + 16);
        QueryMessages.WriteQuery(message, Encoding.UTF8, sql);
        await connection.Leg.Stream.WriteAsync(message.WrittenMemory, cancellationToken).ConfigureAwait(false);
        await connection.Leg.Stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        return await answer.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads the connection for as long as it lasts: notifications fanned out, commands answered.</summary>
    private async Task ReadAsync(PooledServer connection)
    {
        PipeReader reader = connection.Leg.Reader;
        string? error = null;
        string reason = "the server closed the connection";
        try
        {
            while (true)
            {
                ReadResult result = await reader.ReadAsync(stopping.Token).ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = result.Buffer;
                while (FrameReader.TryReadFrame(ref buffer, int.MaxValue, out Frame frame) == FrameReadStatus.Complete)
                {
                    switch ((BackendMessageCode)frame.Code)
                    {
                        case BackendMessageCode.NotificationResponse:
                            FanOut(frame);
                            break;
                        case BackendMessageCode.ErrorResponse:
                            error ??= ServerLogin.ErrorOf(frame.Body).Message;
                            break;
                        case BackendMessageCode.ReadyForQuery:
                            TaskCompletionSource<string?>? answer;
                            lock (sync)
                            {
                                answers.TryDequeue(out answer);
                            }

                            answer?.TrySetResult(error);
                            error = null;
                            break;
                    }
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            return;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            reason = e.Message;
        }

        Lost(connection, reason);
    }

    private void FanOut(Frame frame)
    {
        // Body: the notifying backend's process ID, the channel, the payload.
        if (frame.Body.Length < 6)
        {
            return;
        }

        var fields = new SequenceReader<byte>(frame.Body.Slice(4));
        if (!fields.TryReadTo(out ReadOnlySequence<byte> channelBytes, 0))
        {
            return;
        }

        string channel = Encoding.UTF8.GetString(channelBytes);
        INotificationTarget[] targets;
        lock (sync)
        {
            if (!channels.TryGetValue(channel, out HashSet<INotificationTarget>? found) || found.Count == 0)
            {
                return;
            }

            targets = [.. found];
        }

        byte[] whole = new byte[MessageHeader.Size + frame.Body.Length];
        whole[0] = frame.Code;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(whole.AsSpan(1), (int)frame.Body.Length + 4);
        frame.Body.CopyTo(whole.AsSpan(MessageHeader.Size));
        foreach (INotificationTarget target in targets)
        {
            target.Deliver(whole);
        }
    }

    private void Lost(PooledServer connection, string reason)
    {
        TaskCompletionSource<string?>[] unanswered;
        bool wanted;
        lock (sync)
        {
            unanswered = [.. answers];
            answers.Clear();
            listening.Clear();
            wanted = channels.Count > 0;
        }

        foreach (TaskCompletionSource<string?> answer in unanswered)
        {
            answer.TrySetException(new IOException(reason));
        }

        if (wanted && !stopping.IsCancellationRequested)
        {
            Log.NotificationListenerLost(logger, Database, reason);
            _ = ReopenAsync(connection);
        }
    }

    /// <summary>The connection was lost while channels are wanted: opened again until it listens on them all.</summary>
    private async Task ReopenAsync(PooledServer lost)
    {
        if (Interlocked.Exchange(ref retrying, 1) != 0)
        {
            return;
        }

        try
        {
            while (!stopping.IsCancellationRequested)
            {
                await commands.WaitAsync(stopping.Token).ConfigureAwait(false);
                try
                {
                    if (ReferenceEquals(server, lost))
                    {
                        await CloseAsync().ConfigureAwait(false);
                    }

                    if (Channels == 0)
                    {
                        return;
                    }

                    using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
                    deadline.CancelAfter(timeout);
                    if (server is null)
                    {
                        server = await open(deadline.Token).ConfigureAwait(false);
                        reading = ReadAsync(server);
                        Log.NotificationListenerOpened(logger, Database);
                    }

                    if (await ListenAgainAsync(deadline.Token).ConfigureAwait(false) is null)
                    {
                        return;
                    }
                }
                catch (Exception e) when (e is IOException or UpstreamUnreachableException or ServerLoginException
                    || (e is OperationCanceledException && !stopping.IsCancellationRequested))
                {
                    await CloseAsync().ConfigureAwait(false);
                }
                finally
                {
                    commands.Release();
                }

                await Task.Delay(RetryDelay, stopping.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
        finally
        {
            Volatile.Write(ref retrying, 0);
        }
    }

    /// <summary>Under <see cref="commands"/>: the connection closed and forgotten.</summary>
    private async Task CloseAsync()
    {
        if (server is not { } connection)
        {
            return;
        }

        server = null;
        lock (sync)
        {
            listening.Clear();
        }

        connection.Leg.Reader.CancelPendingRead();
        if (reading is { } read)
        {
            await read.ConfigureAwait(false);
            reading = null;
        }

        await connection.DisposeAsync().ConfigureAwait(false);
    }

    private static string Quoted(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
