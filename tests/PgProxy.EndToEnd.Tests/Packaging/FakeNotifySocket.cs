using System.Net.Sockets;
using System.Text;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Packaging;

/// <summary>
/// What systemd does for a <c>Type=notify</c> service, and no more: a Unix datagram socket bound at a path (or an
/// abstract name), whose name goes to the service in <c>NOTIFY_SOCKET</c>; every datagram received is kept, in order,
/// as the list of its <c>KEY=VALUE</c> lines.
/// </summary>
public sealed class FakeNotifySocket : IAsyncDisposable
{
    private readonly Socket socket;
    private readonly string? path;
    private readonly List<IReadOnlyDictionary<string, string>> messages = [];
    private readonly Lock gate = new();
    private readonly Changes changes = new();
    private readonly CancellationTokenSource stop = new();
    private readonly Task receiving;

    private FakeNotifySocket(string name, string? path)
    {
        Name = name;
        this.path = path;
        socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(name[0] == '@' ? "\0" + name[1..] : name));
        receiving = ReceiveAsync(stop.Token);
    }

    /// <summary>The value for <c>NOTIFY_SOCKET</c>: the path, or <c>@name</c> for an abstract socket.</summary>
    public string Name { get; }

    /// <summary>A socket file in a fresh temporary folder.</summary>
    public static FakeNotifySocket AtPath()
    {
        string folder = Path.Combine(Path.GetTempPath(), "pgproxy-notify-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(folder);
        string file = Path.Combine(folder, "notify.sock");
        return new FakeNotifySocket(file, file);
    }

    /// <summary>An abstract socket (Linux): no file, a name that systemd writes with a leading '@'.</summary>
    public static FakeNotifySocket Abstract() => new("@pgproxy-test-notify-" + Guid.NewGuid().ToString("N"), null);

    /// <summary>Every message so far, oldest first.</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, string>> Messages
    {
        get
        {
            lock (gate)
            {
                return [.. messages];
            }
        }
    }

    /// <summary>How many messages so far have <paramref name="key"/> set to <paramref name="value"/>.</summary>
    public int Count(string key, string value) => Messages.Count(message => message.TryGetValue(key, out string? v) && v == value);

    /// <summary>Waits, with a deadline and without polling, until <paramref name="condition"/> holds for the messages so far.</summary>
    public Task WaitUntilAsync(Func<IReadOnlyList<IReadOnlyDictionary<string, string>>, bool> condition, TimeSpan deadline, string what) =>
        changes.WaitUntilAsync(() => condition(Messages), deadline, what + $" (messages so far: {Describe()})");

    public string Describe() => string.Join(" | ", Messages.Select(message => string.Join(",", message.Select(pair => $"{pair.Key}={pair.Value}"))));

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        socket.Dispose();
        try
        {
            await receiving;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // The socket was closed under the pending receive: that is how it stops.
        }

        stop.Dispose();
        if (path is not null)
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    private async Task ReceiveAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        while (!cancellationToken.IsCancellationRequested)
        {
            int received = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            var message = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (string line in Encoding.UTF8.GetString(buffer, 0, received).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                int equals = line.IndexOf('=', StringComparison.Ordinal);
                message[equals < 0 ? line : line[..equals]] = equals < 0 ? "" : line[(equals + 1)..];
            }

            lock (gate)
            {
                messages.Add(message);
            }

            changes.Announce();
        }
    }
}
