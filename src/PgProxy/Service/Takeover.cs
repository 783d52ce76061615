using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Hosting;
using PgProxy.Core.Listening;

namespace PgProxy.Host.Service;

/// <summary>
/// The hand-over of the listening sockets from a running PgProxy to a new one (<c>pgproxy --takeover</c>), over the
/// running process's control socket (a Unix domain socket, see <see cref="ControlPath"/>):
/// <list type="number">
/// <item>the new process, its configuration and plugins loaded, connects and sends <c>TAKEOVER 1</c>;</item>
/// <item>the old one answers with the keys of its listeners and their sockets attached (SCM_RIGHTS);</item>
/// <item>the new one accepts on them, then sends <c>ACCEPTING</c>;</item>
/// <item>only then does the old one stop accepting (the connections queued meanwhile stay queued on the shared
/// sockets, for the new one), closes its metrics endpoint and control socket, answers <c>RELEASED</c>, and stops the
/// way SIGTERM stops it: sessions end at their next idle point, busy ones after <c>shutdown-timeout</c>.</item>
/// </list>
/// A new process that fails before <c>ACCEPTING</c> changes nothing: the old one never stopped accepting.
/// </summary>
internal static class Takeover
{
    /// <summary>Overrides where the control socket is: a path.</summary>
    public const string SocketVariable = "PGPROXY_CONTROL_SOCKET";

    public const string Request = "TAKEOVER 1";
    public const string Accepting = "ACCEPTING";
    public const string Released = "RELEASED";

    /// <summary>How long each side waits for the other's next step before giving up.</summary>
    public static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The control socket of the process running <paramref name="configFile"/>: <c>PGPROXY_CONTROL_SOCKET</c> when set;
    /// otherwise <c>pgproxy-HASH.sock</c>, HASH from the configuration file's full path, in <c>$RUNTIME_DIRECTORY</c>
    /// (systemd's <c>RuntimeDirectory=</c>), else <c>$XDG_RUNTIME_DIR</c>, else the temporary folder.
    /// </summary>
    public static string ControlPath(string configFile)
    {
        if (Environment.GetEnvironmentVariable(SocketVariable) is { Length: > 0 } path)
        {
            return path;
        }

        string directory = FirstSet("RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR") ?? Path.GetTempPath();
        // RUNTIME_DIRECTORY may list several folders, separated by colons: the first is PgProxy's.
        directory = directory.Split(':')[0];
        string hash = Fnv1a(Encoding.UTF8.GetBytes(Path.GetFullPath(configFile))).ToString("x16", System.Globalization.CultureInfo.InvariantCulture)[..12];
        return Path.Combine(directory, $"pgproxy-{hash}.sock");
    }

    /// <summary>
    /// FNV-1a, 64 bits: a name, not a secret. SHA-256 would load OpenSSL at every start, about 4 MB resident
    /// (bench/footprint.sh) for a process that may never use TLS.
    /// </summary>
    private static ulong Fnv1a(ReadOnlySpan<byte> bytes)
    {
        ulong hash = 14695981039346656037;
        foreach (byte b in bytes)
        {
            hash = (hash ^ b) * 1099511628211;
        }

        return hash;
    }

    private static string? FirstSet(params string[] names) =>
        names.Select(Environment.GetEnvironmentVariable).FirstOrDefault(value => !string.IsNullOrEmpty(value));

    /// <summary>Writes one line (UTF-8, ending in a newline).</summary>
    internal static void WriteLine(Socket socket, string line) => socket.Send(Encoding.UTF8.GetBytes(line + "\n"));

    /// <summary>Reads one line, byte by byte (the lines are short and few); null at the end of the stream.</summary>
    internal static string? ReadLine(Socket socket)
    {
        var bytes = new List<byte>(32);
        Span<byte> one = stackalloc byte[1];
        while (true)
        {
            if (socket.Receive(one) == 0)
            {
                return null;
            }

            if (one[0] == (byte)'\n')
            {
                return Encoding.UTF8.GetString(bytes.ToArray());
            }

            if (bytes.Count > 4096)
            {
                throw new InvalidDataException("a line of the hand-over protocol is too long");
            }

            bytes.Add(one[0]);
        }
    }

    /// <summary>The sockets' message: a 4-byte length, then one key per socket, a line each; the sockets attached.</summary>
    internal static byte[] Describe(IReadOnlyList<(string Key, Socket Socket)> sockets)
    {
        byte[] text = Encoding.UTF8.GetBytes(string.Concat(sockets.Select(s => s.Key + "\n")));
        byte[] message = new byte[4 + text.Length];
        BinaryPrimitives.WriteInt32BigEndian(message, text.Length);
        text.CopyTo(message, 4);
        return message;
    }

    /// <summary>
    /// The new process's side: connects to the running one, asks for its sockets and returns them, and the connection
    /// for <see cref="ConfirmAsync"/>. Throws <see cref="TakeoverException"/> with the reason when there is nothing to
    /// take over.
    /// </summary>
    public static async Task<(Socket Control, InheritedListeners Listeners)> RequestAsync(string path, ILogger logger, CancellationToken cancellationToken)
    {
        if (!DescriptorPassing.IsSupported)
        {
            throw new TakeoverException("--takeover needs Linux on a 64-bit processor");
        }

        var control = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            try
            {
                await control.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                throw new TakeoverException($"no running PgProxy answers on its control socket {path}: {e.Message}", e);
            }

            (int pid, _) = DescriptorPassing.PeerCredentials(control);
            HostLog.TakingOver(logger, pid, path);
            InheritedListeners listeners = await Task.Run(() => Receive(control), cancellationToken).ConfigureAwait(false);
            HostLog.TookSockets(logger, listeners.Count, pid);
            return (control, listeners);
        }
        catch
        {
            control.Dispose();
            throw;
        }
    }

    private static InheritedListeners Receive(Socket control)
    {
        control.Blocking = true;
        control.ReceiveTimeout = (int)StepTimeout.TotalMilliseconds;
        control.SendTimeout = (int)StepTimeout.TotalMilliseconds;
        WriteLine(control, Request);
        var descriptors = new List<int>();
        byte[] buffer = new byte[64 * 1024];
        int received = 0;
        try
        {
            do
            {
                int n = DescriptorPassing.Receive(control, buffer.AsSpan(received), descriptors);
                if (n == 0)
                {
                    throw new TakeoverException("the running PgProxy closed its control connection before sending its sockets");
                }

                received += n;
            }
            while (received < 4 || received < 4 + BinaryPrimitives.ReadInt32BigEndian(buffer));

            string[] keys = Encoding.UTF8.GetString(buffer, 4, BinaryPrimitives.ReadInt32BigEndian(buffer)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (keys.Length != descriptors.Count)
            {
                throw new TakeoverException($"the running PgProxy described {keys.Length} socket(s) and sent {descriptors.Count}");
            }

            var sockets = new List<(string, Socket)>(keys.Length);
            for (int i = 0; i < keys.Length; i++)
            {
                sockets.Add((keys[i], new Socket(new SafeSocketHandle(descriptors[i], ownsHandle: true))));
            }

            descriptors.Clear();
            return new InheritedListeners(sockets);
        }
        catch (SocketException e)
        {
            throw new TakeoverException($"the hand-over of the sockets failed: {e.Message}", e);
        }
        finally
        {
            foreach (int descriptor in descriptors)
            {
                using var orphan = new SafeSocketHandle(descriptor, ownsHandle: true);
            }
        }
    }

    /// <summary>
    /// The new process's side, once it accepts on every socket: tells the old one, and waits until it stopped accepting
    /// and released its metrics endpoint and control socket (or went away).
    /// </summary>
    public static async Task ConfirmAsync(Socket control, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(control);
        string? answer = await Task.Run(
            () =>
            {
                try
                {
                    WriteLine(control, Accepting);
                    return ReadLine(control);
                }
                catch (SocketException)
                {
                    return null;
                }
            },
            cancellationToken).ConfigureAwait(false);
        if (answer == Released)
        {
            HostLog.TakeoverReleased(logger);
        }
        else
        {
            HostLog.TakeoverNoRelease(logger);
        }
    }
}

/// <summary>A hand-over that cannot happen, with the reason.</summary>
internal sealed class TakeoverException : Exception
{
    public TakeoverException(string message)
        : base(message)
    {
    }

    public TakeoverException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>
/// The running process's side: listens on the control socket and hands its listening sockets to a process that asks,
/// run by the same user. After a hand-over it stops listening, and <see cref="HandedOver"/> completes: the host then
/// stops as on SIGTERM.
/// </summary>
internal sealed class TakeoverControl : IAsyncDisposable
{
    private readonly string path;
    private readonly ProxyServer server;
    private readonly Func<Task> release;
    private readonly ILogger logger;
    private readonly Socket listener;
    private readonly CancellationTokenSource stop = new();
    private readonly TaskCompletionSource handedOver = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task loop;
    private int closed;

    private TakeoverControl(string path, ProxyServer server, Func<Task> release, ILogger logger, Socket listener)
    {
        this.path = path;
        this.server = server;
        this.release = release;
        this.logger = logger;
        this.listener = listener;
        loop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>Completes once the listening sockets were handed over and this process stopped accepting.</summary>
    public Task HandedOver => handedOver.Task;

    /// <summary>
    /// Listens on <paramref name="path"/> (a file left by a process that is gone is replaced), readable by this user
    /// only; null, logged, when it cannot (the proxy runs on, without hand-over).
    /// </summary>
    /// <param name="path">The control socket's path (<see cref="Takeover.ControlPath"/>).</param>
    /// <param name="server">The server whose listening sockets it hands over.</param>
    /// <param name="logger">The general log.</param>
    /// <param name="release">What else to release once the new process accepts (the metrics endpoint).</param>
    public static TakeoverControl? TryStart(string path, ProxyServer server, Func<Task> release, ILogger logger)
    {
        if (!OperatingSystem.IsLinux() || !DescriptorPassing.IsSupported)
        {
            return null;
        }

        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            File.Delete(path);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(4);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            listener.Dispose();
            HostLog.ControlSocketFailed(logger, path, e.Message);
            return null;
        }

        HostLog.ControlSocketListening(logger, path);
        return new TakeoverControl(path, server, release, logger, listener);
    }

    private async Task AcceptLoopAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            Socket connection;
            try
            {
                connection = await listener.AcceptAsync(stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            using (connection)
            {
                try
                {
                    if (await Task.Run<Task?>(() => HandOver(connection), CancellationToken.None).ConfigureAwait(false) is { } accepted)
                    {
                        await accepted.ConfigureAwait(false);
                        return;
                    }
                }
                catch (Exception e) when (e is SocketException or IOException or InvalidDataException or ObjectDisposedException)
                {
                    HostLog.TakeoverFailed(logger, e.Message);
                }
            }
        }
    }

    /// <summary>One request: null when it came to nothing (this process goes on accepting), else the release to await.</summary>
    private Task? HandOver(Socket connection)
    {
        connection.Blocking = true;
        connection.ReceiveTimeout = (int)Takeover.StepTimeout.TotalMilliseconds;
        connection.SendTimeout = (int)Takeover.StepTimeout.TotalMilliseconds;
        (int pid, uint uid) = DescriptorPassing.PeerCredentials(connection);
        if (uid != DescriptorPassing.EffectiveUserId && uid != 0)
        {
            HostLog.TakeoverRefused(logger, pid, uid);
            return null;
        }

        if (Takeover.ReadLine(connection) != Takeover.Request)
        {
            HostLog.TakeoverFailed(logger, $"process {pid} sent no \"{Takeover.Request}\"");
            return null;
        }

        IReadOnlyList<(string Key, Socket Socket)> sockets = server.ListeningSockets();
        DescriptorPassing.Send(connection, Takeover.Describe(sockets), [.. sockets.Select(s => s.Socket.SafeHandle)]);
        HostLog.HandingOver(logger, sockets.Count, pid);
        string? answer = Takeover.ReadLine(connection);
        if (answer != Takeover.Accepting)
        {
            // The new process failed to start, or gave up: nothing changed here.
            HostLog.TakeoverFailed(logger, $"process {pid} did not confirm it accepts; this process goes on serving");
            return null;
        }

        return ReleaseAsync(connection, pid);
    }

    private async Task ReleaseAsync(Socket connection, int pid)
    {
        // The new process accepts on the same sockets now: stop accepting here, release what it must bind itself, and
        // only then tell it.
        await server.HandOffListenersAsync().ConfigureAwait(false);
        await release().ConfigureAwait(false);
        Close();
        HostLog.HandedOver(logger, pid);
        try
        {
            Takeover.WriteLine(connection, Takeover.Released);
        }
        catch (SocketException)
        {
            // The new process went away meanwhile; it was accepting, so its going is its supervisor's business.
        }

        handedOver.TrySetResult();
    }

    /// <summary>Stops listening and removes the socket file (a new process binds its own at the same path).</summary>
    private void Close()
    {
        if (Interlocked.Exchange(ref closed, 1) != 0)
        {
            return;
        }

        stop.Cancel();
        listener.Dispose();
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Replaced at the next start.
        }
    }

    public async ValueTask DisposeAsync()
    {
        Close();
        try
        {
            await loop.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            HostLog.TakeoverFailed(logger, e.Message);
        }

        stop.Dispose();
    }
}
