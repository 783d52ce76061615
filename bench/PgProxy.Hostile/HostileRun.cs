using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace PgProxy.Hostile;

/// <summary>What one hostile run is pointed at and how hard it pushes.</summary>
public sealed class HostileSettings
{
    public string Host { get; init; } = "127.0.0.1";

    public int Port { get; init; }

    /// <summary>A user the proxy logs in without a password (trust), in a database of its own: mutated SQL runs there.</summary>
    public string User { get; init; } = "hostile";

    public string Database { get; init; } = "hostile";

    /// <summary>The run ends once this many frames have been sent (every frame of a mutated stream counts once).</summary>
    public long Frames { get; init; } = 1_000_000;

    public int Concurrency { get; init; } = 32;

    public int Seed { get; init; } = 1;

    /// <summary>Whether the proxy offers TLS: then the TLS scenarios run too.</summary>
    public bool Tls { get; init; }

    /// <summary>The proxy's limits.startup-timeout: a session that never completes its start-up must end by then.</summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The proxy's limits.client-idle-timeout: a logged-in session stalled mid-frame must last until then, and end.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>How many sessions log in, send half a frame and wait for client-idle-timeout.</summary>
    public int Stalls { get; init; } = 4;
}

/// <summary>How the hostile client drives one session.</summary>
public enum Scenario
{
    /// <summary>Random bytes where the start-up packet belongs, then silence.</summary>
    GarbageStartup,

    /// <summary>A real StartupMessage with bit flips, a cut or a wrong length, then silence.</summary>
    MutatedStartup,

    /// <summary>Nothing, or the first bytes of a StartupMessage, then silence: start-up never completes.</summary>
    HalfStartup,

    /// <summary>A real login, then a mutated stream of a real session's frames; half of these sessions then close their side.</summary>
    MutatedSession,

    /// <summary>SSLRequest and a TLS handshake, then random bytes (a garbage start-up) inside TLS.</summary>
    TlsGarbage,

    /// <summary>SSLRequest and a TLS handshake, then random TLS records written on the socket under the TLS layer.</summary>
    TlsRecords,

    /// <summary>A real login, then half a Query, left hanging: it must stay open until client-idle-timeout ends it.</summary>
    MidFrameStall,
}

/// <summary>How a session ended, as the client saw it.</summary>
public enum Ending
{
    /// <summary>The proxy (or the server through it) sent an ErrorResponse, then closed.</summary>
    ErrorResponse,

    /// <summary>The proxy closed without an ErrorResponse, or the client closed its side and the proxy followed.</summary>
    Closed,

    /// <summary>Start-up never completed and the proxy closed at limits.startup-timeout.</summary>
    StartupTimeout,

    /// <summary>After login, the proxy ended the session with 57P05 at limits.client-idle-timeout.</summary>
    IdleTimeout,

    /// <summary>
    /// After login and a mutated stream, left open by the client, and still open at its bound, in a state that
    /// client-idle-timeout does not count as idle: an extended-protocol batch with no Sync that did not fail (the server
    /// may still be running what it asked for), or a COPY from the client (a COPY is never idle). Not a failure of the
    /// proxy's promise, but not ended either: counted apart (docs/reliability.md). A session whose server's last message
    /// was an error, which PostgreSQL follows by skipping to the client's Sync, is idle: left open, it is a failure.
    /// The client then closes.
    /// </summary>
    LeftWaiting,
}

/// <summary>The totals of one run.</summary>
public sealed class HostileReport
{
    private long framesSent;
    private long framesMutated;
    private readonly ConcurrentDictionary<(Scenario, Ending), int> endings = new();
    private readonly ConcurrentQueue<string> failures = new();
    private int failureCount;

    public long FramesSent => Interlocked.Read(ref framesSent);

    public long FramesMutated => Interlocked.Read(ref framesMutated);

    public int Failures => Volatile.Read(ref failureCount);

    public int Sessions => endings.Values.Sum() + Failures;

    public int Count(Ending ending) => endings.Where(e => e.Key.Item2 == ending).Sum(e => e.Value);

    public int Count(Scenario scenario) => endings.Where(e => e.Key.Item1 == scenario).Sum(e => e.Value);

    public IReadOnlyCollection<string> FailureSamples => failures;

    internal void Sent(long frames, long mutated)
    {
        Interlocked.Add(ref framesSent, frames);
        Interlocked.Add(ref framesMutated, mutated);
    }

    internal void Ended(Scenario scenario, Ending ending) => endings.AddOrUpdate((scenario, ending), 1, static (_, n) => n + 1);

    internal void Failed(int session, Scenario scenario, string why)
    {
        Interlocked.Increment(ref failureCount);
        if (failures.Count < 20)
        {
            failures.Enqueue(string.Create(CultureInfo.InvariantCulture, $"session {session} ({scenario}): {why}"));
        }
    }

    public string Describe(TimeSpan elapsed)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"hostile: {FramesSent} frames sent, {FramesMutated} mutated, {Sessions} sessions in {elapsed.TotalSeconds:F1} s");
        text.AppendLine();
        foreach (Scenario scenario in Enum.GetValues<Scenario>())
        {
            var parts = Enum.GetValues<Ending>()
                .Select(e => (e, n: endings.TryGetValue((scenario, e), out int n) ? n : 0))
                .Where(p => p.n > 0)
                .Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.e} {p.n}"));
            text.Append(CultureInfo.InvariantCulture, $"hostile: {scenario}: {Count(scenario)} ended ({string.Join(", ", parts)})");
            text.AppendLine();
        }

        text.Append(CultureInfo.InvariantCulture, $"hostile: endings: ErrorResponse {Count(Ending.ErrorResponse)}, Closed {Count(Ending.Closed)}, StartupTimeout {Count(Ending.StartupTimeout)}, IdleTimeout {Count(Ending.IdleTimeout)}, LeftWaiting {Count(Ending.LeftWaiting)}; failures {Failures}");
        foreach (string failure in failures)
        {
            text.AppendLine();
            text.Append("hostile: FAILED ").Append(failure);
        }

        return text.ToString();
    }
}

/// <summary>
/// Opens sessions against a live proxy, <see cref="HostileSettings.Concurrency"/> at a time, until
/// <see cref="HostileSettings.Frames"/> frames were sent. Each session's bytes come from its own seeded
/// <see cref="Random"/>, so a run with the same seed sends the same streams. A session fails when it is not ended
/// the way the proxy's limits promise: still open past its bound, a stall ended early, a login that did not work.
/// </summary>
public sealed class HostileRun(HostileSettings settings)
{
    private static readonly Encoding Utf8 = Encoding.UTF8;

    /// <summary>
    /// The frames of real sessions, as pgbench (simple and extended), psql and a COPY send them; the hostile streams
    /// are these, looped and mutated.
    /// </summary>
    private static readonly byte[][] SessionFrames =
    [
        Query("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"),
        Query("BEGIN;"),
        Query("SELECT g, repeat('x', 100) FROM generate_series(1, 50) g"),
        Query("END;"),
        Parse("", "SELECT abalance FROM pgbench_accounts WHERE aid = $1"),
        Bind("", "48213"),
        Message('D', [(byte)'P', 0]),
        Message('E', [0, 0, 0, 0, 0]),
        Message('S', []),
        Parse("P0_1", "SELECT $1::int + 1"),
        Bind("P0_1", "41"),
        Message('E', [0, 0, 0, 0, 0]),
        Message('C', [(byte)'S', .. Utf8.GetBytes("P0_1\0")]),
        Message('H', []),
        Message('S', []),
        Query("COPY copied FROM STDIN"),
        Message('d', Utf8.GetBytes("1\tone\n2\ttwo\n")),
        Message('c', []),
        Query("COPY copied TO STDOUT"),
        Message('f', Utf8.GetBytes("client gave up\0")),
    ];

    private readonly HostileReport report = new();
    private long framesBudget;
    private int nextSession;

    public async Task<HostileReport> RunAsync(TextWriter? progress, CancellationToken cancellationToken)
    {
        framesBudget = settings.Frames;
        var stalls = Enumerable.Range(0, settings.Stalls).Select(i => RunSessionAsync(-1 - i, Scenario.MidFrameStall, cancellationToken)).ToArray();
        using var ticker = new PeriodicTimer(TimeSpan.FromSeconds(10));
        var workers = Enumerable.Range(0, settings.Concurrency).Select(_ => WorkAsync(cancellationToken)).ToArray();
        Task all = Task.WhenAll(workers.Concat(stalls));
        if (progress is not null)
        {
            _ = Task.Run(async () =>
            {
                while (!all.IsCompleted && await ticker.WaitForNextTickAsync(CancellationToken.None))
                {
                    await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"hostile: {report.FramesSent} frames, {report.Sessions} sessions, {report.Failures} failures"));
                }
            }, CancellationToken.None);
        }

        await all;
        return report;
    }

    private async Task WorkAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested && report.FramesSent < framesBudget)
        {
            int session = Interlocked.Increment(ref nextSession);
            var random = new Random(HashCode.Combine(settings.Seed, session));
            int pick = random.Next(100);
            Scenario scenario = pick switch
            {
                < 60 => Scenario.MutatedSession,
                < 70 => Scenario.GarbageStartup,
                < 80 => Scenario.MutatedStartup,
                < 86 => Scenario.HalfStartup,
                < 93 when settings.Tls => Scenario.TlsGarbage,
                < 100 when settings.Tls => Scenario.TlsRecords,
                _ => Scenario.MutatedSession,
            };
            await RunSessionAsync(session, scenario, cancellationToken);
        }
    }

    private async Task RunSessionAsync(int session, Scenario scenario, CancellationToken cancellationToken)
    {
        var random = new Random(HashCode.Combine(settings.Seed, session, 17));
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(settings.Host, settings.Port, cancellationToken);
        }
        catch (SocketException exception)
        {
            report.Failed(session, scenario, $"connect: {exception.SocketErrorCode} (is the proxy up?)");
            return;
        }

        try
        {
            string? failure = scenario switch
            {
                Scenario.GarbageStartup or Scenario.MutatedStartup or Scenario.HalfStartup => await BeforeLoginAsync(socket, scenario, random, cancellationToken),
                Scenario.TlsGarbage or Scenario.TlsRecords => await InsideTlsAsync(socket, scenario, random, cancellationToken),
                Scenario.MutatedSession => await MutatedSessionAsync(socket, random, cancellationToken),
                _ => await StallAsync(socket, cancellationToken),
            };
            if (failure is not null)
            {
                report.Failed(session, scenario, failure);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The run was stopped.
        }

        bool Record(Ending ending)
        {
            report.Ended(scenario, ending);
            return true;
        }

        async Task<string?> BeforeLoginAsync(Socket socket, Scenario scenario, Random random, CancellationToken cancellationToken)
        {
            byte[] bytes = scenario switch
            {
                Scenario.GarbageStartup => Garbage(random),
                Scenario.MutatedStartup => Mutate(Startup(settings.User, settings.Database), random, out _),
                _ => Startup(settings.User, settings.Database)[..random.Next(0, 12)],
            };
            var started = DateTime.UtcNow;
            var reader = new Reader(socket, stream: null);
            if (!await SendAsync(socket, bytes, cancellationToken))
            {
                return Record(Ending.Closed) ? null : null;
            }

            report.Sent(1, scenario == Scenario.HalfStartup && bytes.Length == 0 ? 0 : 1);
            return await EndedBeforeLoginAsync(reader, started, cancellationToken);
        }

        async Task<string?> EndedBeforeLoginAsync(Reader reader, DateTime started, CancellationToken cancellationToken)
        {
            // The hostile client keeps its side open: only the proxy can end the session.
            TimeSpan bound = settings.StartupTimeout + TimeSpan.FromSeconds(3) + (settings.StartupTimeout / 2);
            if (!await reader.WaitEndAsync(bound - (DateTime.UtcNow - started), cancellationToken))
            {
                return $"still open {bound.TotalSeconds:F1} s after connecting (startup-timeout {settings.StartupTimeout.TotalSeconds:F1} s)";
            }

            TimeSpan lasted = DateTime.UtcNow - started;
            if (reader.LoggedIn)
            {
                // The mutation left a login that works (a flipped bit in application_name): it ends as an idle session.
                return reader.ErrorCode == "57P05" ? (Record(Ending.IdleTimeout) ? null : null) : (Record(reader.ErrorCode is null ? Ending.Closed : Ending.ErrorResponse) ? null : null);
            }

            Ending ending = reader.ErrorCode is not null && lasted < settings.StartupTimeout * 0.9 ? Ending.ErrorResponse
                : lasted >= settings.StartupTimeout * 0.9 ? Ending.StartupTimeout
                : Ending.Closed;
            Record(ending);
            return null;
        }

        async Task<string?> InsideTlsAsync(Socket socket, Scenario scenario, Random random, CancellationToken cancellationToken)
        {
            var started = DateTime.UtcNow;
            var network = new NetworkStream(socket, ownsSocket: false);
            await network.WriteAsync(new byte[] { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f }, cancellationToken);
            byte[] answer = new byte[1];
            if (await network.ReadAsync(answer, cancellationToken) != 1 || answer[0] != (byte)'S')
            {
                return "the proxy does not offer TLS: run without --tls";
            }

#pragma warning disable CA5359 // The benches' proxy has a throwaway self-signed certificate; what is tried here is the proxy, not its identity.
            var tls = new SslStream(network, leaveInnerStreamOpen: true, (_, _, _, _) => true);
#pragma warning restore CA5359
            await using (tls)
            {
                using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                {
                    handshake.CancelAfter(settings.StartupTimeout + TimeSpan.FromSeconds(5));
                    await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" }, handshake.Token);
                }

                Reader reader;
                if (scenario == Scenario.TlsGarbage)
                {
                    reader = new Reader(socket, tls);
                    byte[] bytes = random.Next(2) == 0 ? Garbage(random) : Mutate(Startup(settings.User, settings.Database), random, out _);
                    try
                    {
                        await tls.WriteAsync(bytes, cancellationToken);
                    }
                    catch (IOException)
                    {
                        return Record(Ending.Closed) ? null : null;
                    }
                }
                else
                {
                    // Records under the TLS layer: an application-data header with random contents, or plain noise.
                    reader = new Reader(socket, network);
                    byte[] record = new byte[random.Next(5, 400)];
                    random.NextBytes(record);
                    if (random.Next(2) == 0)
                    {
                        record[0] = 0x17;
                        record[1] = 3;
                        record[2] = 3;
                        BinaryPrimitives.WriteUInt16BigEndian(record.AsSpan(3), (ushort)(record.Length - 5));
                    }

                    if (!await SendAsync(socket, record, cancellationToken))
                    {
                        return Record(Ending.Closed) ? null : null;
                    }
                }

                report.Sent(1, 1);
                return await EndedBeforeLoginAsync(reader, started, cancellationToken);
            }
        }

        async Task<string?> MutatedSessionAsync(Socket socket, Random random, CancellationToken cancellationToken)
        {
            var reader = new Reader(socket, stream: null);
            if (!await SendAsync(socket, Startup(settings.User, settings.Database), cancellationToken))
            {
                return "the proxy closed before the login";
            }

            if (!await reader.WaitLoggedInAsync(TimeSpan.FromSeconds(30), cancellationToken))
            {
                return $"no ReadyForQuery after a valid StartupMessage (error {reader.ErrorCode ?? "none"})";
            }

            int frames = random.Next(100, 400);
            long sent = 0;
            long mutated = 0;
            var batch = new List<byte>(8192);
            bool open = true;
            for (int i = 0; i < frames && open; i++)
            {
                byte[] frame = SessionFrames[random.Next(SessionFrames.Length)];
                switch (random.Next(100))
                {
                    case < 35:
                        batch.AddRange(frame);
                        break;
                    case < 40:
                        // Out of order: the next frame of the stream first, then this one.
                        batch.AddRange(SessionFrames[random.Next(SessionFrames.Length)]);
                        batch.AddRange(frame);
                        i++;
                        sent++;
                        mutated++;
                        break;
                    default:
                        batch.AddRange(Mutate(frame, random, out _));
                        mutated++;
                        break;
                }

                sent++;
                if (batch.Count > 4096 || i == frames - 1)
                {
                    open = await SendAsync(socket, [.. batch], cancellationToken);
                    batch.Clear();
                }
            }

            report.Sent(sent, mutated);
            var lastByte = DateTime.UtcNow;
            bool leave = random.Next(2) == 0;
            if (leave && open)
            {
                try
                {
                    socket.Shutdown(SocketShutdown.Send);
                }
                catch (SocketException)
                {
                    // Already reset by the proxy.
                }
            }

            // Left open, a session whose stream ended after a ReadyForQuery is idle: client-idle-timeout bounds it.
            TimeSpan bound = (settings.IdleTimeout * 1.5) + TimeSpan.FromSeconds(5);
            if (!await reader.WaitEndAsync(bound, cancellationToken))
            {
                if (!leave)
                {
                    // PostgreSQL flushes an error at once; when nothing follows it, the error was inside an extended batch
                    // and the server skips to a Sync that never came, with nothing running: client-idle-timeout must have
                    // ended the session. (After a ReadyForQuery the client may have sent an unsynced batch since, whose
                    // answers the server holds until a Flush or Sync: busy as far as the proxy can tell.)
                    if (reader.LastCode == (byte)'E' && !reader.Fatal)
                    {
                        return $"still open {bound.TotalSeconds:F1} s after an error with no Sync from the client (error {reader.ErrorCode ?? "none"}, client-idle-timeout {settings.IdleTimeout.TotalSeconds:F1} s)";
                    }

                    Record(Ending.LeftWaiting);
                    return null;
                }

                return $"still open {bound.TotalSeconds:F1} s after the client closed its side (last error {reader.ErrorCode ?? "none"})";
            }

            Record(reader.ErrorCode switch
            {
                "57P05" => Ending.IdleTimeout,
                null => Ending.Closed,
                _ => reader.Fatal ? Ending.ErrorResponse : Ending.Closed,
            });
            return null;
        }

        async Task<string?> StallAsync(Socket socket, CancellationToken cancellationToken)
        {
            var reader = new Reader(socket, stream: null);
            await SendAsync(socket, Startup(settings.User, settings.Database), cancellationToken);
            if (!await reader.WaitLoggedInAsync(TimeSpan.FromSeconds(30), cancellationToken))
            {
                return $"no ReadyForQuery after a valid StartupMessage (error {reader.ErrorCode ?? "none"})";
            }

            byte[] query = Query("SELECT 'a stalled query that never finishes arriving'");
            await SendAsync(socket, query[..12], cancellationToken);
            report.Sent(1, 1);
            var stalledAt = DateTime.UtcNow;
            if (await reader.WaitEndAsync(settings.IdleTimeout * 0.9, cancellationToken))
            {
                return $"ended {(DateTime.UtcNow - stalledAt).TotalSeconds:F2} s into a stall mid-frame, before client-idle-timeout ({settings.IdleTimeout.TotalSeconds:F1} s), error {reader.ErrorCode ?? "none"}";
            }

            TimeSpan bound = (settings.IdleTimeout * 0.1) + (settings.IdleTimeout / 5) + TimeSpan.FromSeconds(5);
            if (!await reader.WaitEndAsync(bound, cancellationToken))
            {
                return $"still open {(DateTime.UtcNow - stalledAt).TotalSeconds:F1} s into a stall mid-frame (client-idle-timeout {settings.IdleTimeout.TotalSeconds:F1} s)";
            }

            if (reader.ErrorCode != "57P05")
            {
                return $"ended at {(DateTime.UtcNow - stalledAt).TotalSeconds:F2} s with {reader.ErrorCode ?? "no error"}, not 57P05";
            }

            Record(Ending.IdleTimeout);
            return null;
        }
    }

    /// <summary>Writes all of <paramref name="bytes"/>; false when the proxy has closed (a reset or a broken pipe).</summary>
    private static async Task<bool> SendAsync(Socket socket, byte[] bytes, CancellationToken cancellationToken)
    {
        try
        {
            int offset = 0;
            while (offset < bytes.Length)
            {
                offset += await socket.SendAsync(bytes.AsMemory(offset), SocketFlags.None, cancellationToken);
            }

            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>One mutation of a frame: bit flips, a cut, a wrong length, a duplicate, noise, or nothing at all sent.</summary>
    public static byte[] Mutate(byte[] frame, Random random, out string how)
    {
        byte[] copy = [.. frame];
        switch (random.Next(6))
        {
            case 0:
                how = "bit flips";
                for (int n = random.Next(1, 5); n > 0; n--)
                {
                    int at = random.Next(copy.Length);
                    copy[at] ^= (byte)(1 << random.Next(8));
                }

                return copy;
            case 1:
                how = "truncated";
                return copy[..random.Next(1, Math.Max(2, copy.Length))];
            case 2:
                how = "wrong length";
                if (copy.Length >= 5)
                {
                    int offset = frame[0] == 0 ? 0 : 1; // a start-up packet has no type byte
                    int length = BinaryPrimitives.ReadInt32BigEndian(copy.AsSpan(offset));
                    int wrong = random.Next(5) switch
                    {
                        0 => random.Next(0, 4),
                        1 => Math.Max(0, length - random.Next(1, 8)),
                        2 => length + random.Next(1, 64),
                        3 => random.Next(int.MaxValue / 2, int.MaxValue),
                        _ => -random.Next(1, int.MaxValue),
                    };
                    BinaryPrimitives.WriteInt32BigEndian(copy.AsSpan(offset), wrong);
                }

                return copy;
            case 3:
                how = "duplicated";
                return [.. copy, .. copy];
            case 4:
                how = "noise frame";
                byte[] noise = new byte[random.Next(5, 64)];
                random.NextBytes(noise);
                if (random.Next(2) == 0)
                {
                    BinaryPrimitives.WriteInt32BigEndian(noise.AsSpan(1), noise.Length - 1);
                }

                return noise;
            default:
                how = "dropped";
                return [];
        }
    }

    private static byte[] Garbage(Random random)
    {
        byte[] garbage = new byte[random.Next(1, 300)];
        random.NextBytes(garbage);
        if (garbage.Length >= 8 && random.Next(2) == 0)
        {
            // A plausible length, so the proxy waits for the rest, or a plausible one with a wrong protocol code.
            BinaryPrimitives.WriteInt32BigEndian(garbage, random.Next(8, garbage.Length + 200));
        }

        return garbage;
    }

    public static byte[] Startup(string user, string database)
    {
        byte[] body = Utf8.GetBytes($"user\0{user}\0database\0{database}\0application_name\0pgproxy-hostile\0client_encoding\0UTF8\0\0");
        byte[] packet = new byte[body.Length + 8];
        BinaryPrimitives.WriteInt32BigEndian(packet, packet.Length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), 196608);
        body.CopyTo(packet.AsSpan(8));
        return packet;
    }

    public static byte[] Query(string sql) => Message('Q', [.. Utf8.GetBytes(sql), 0]);

    private static byte[] Parse(string name, string sql) => Message('P', [.. Utf8.GetBytes(name), 0, .. Utf8.GetBytes(sql), 0, 0, 0]);

    private static byte[] Bind(string statement, string parameter)
    {
        byte[] value = Utf8.GetBytes(parameter);
        byte[] length = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, value.Length);
        return Message('B', [0, .. Utf8.GetBytes(statement), 0, 0, 0, 0, 1, .. length, .. value, 0, 0]);
    }

    private static byte[] Message(char code, byte[] body)
    {
        byte[] message = new byte[body.Length + 5];
        message[0] = (byte)code;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), body.Length + 4);
        body.CopyTo(message.AsSpan(5));
        return message;
    }

    /// <summary>
    /// Reads what the proxy sends until it closes: notes the login's ReadyForQuery and the last ErrorResponse's
    /// SQLSTATE and severity, and discards the rest.
    /// </summary>
    private sealed class Reader
    {
        private readonly TaskCompletionSource loggedIn = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Task ended;
        private int lastCode; // 0: none or unknown

        public Reader(Socket socket, Stream? stream)
        {
            ended = Task.Run(() => ReadAsync(socket, stream));
        }

        public bool LoggedIn => loggedIn.Task.IsCompleted;

        public string? ErrorCode { get; private set; }

        public bool Fatal { get; private set; }

        /// <summary>The type of the last message the server sent; null before the first, or once large rows stopped the parsing.</summary>
        public byte? LastCode
        {
            get
            {
                int code = Volatile.Read(ref lastCode);
                return code == 0 ? null : (byte)code;
            }
        }

        public async Task<bool> WaitLoggedInAsync(TimeSpan deadline, CancellationToken cancellationToken)
        {
            Task first = await Task.WhenAny(loggedIn.Task, ended, Task.Delay(deadline, cancellationToken));
            return first == loggedIn.Task;
        }

        public async Task<bool> WaitEndAsync(TimeSpan deadline, CancellationToken cancellationToken)
        {
            if (deadline <= TimeSpan.Zero)
            {
                return ended.IsCompleted;
            }

            return await Task.WhenAny(ended, Task.Delay(deadline, cancellationToken)) == ended;
        }

        private async Task ReadAsync(Socket socket, Stream? stream)
        {
            byte[] buffer = new byte[64 * 1024];
            int held = 0;
            bool parse = stream is not NetworkStream;
            try
            {
                while (true)
                {
                    int read = stream is null ? await socket.ReceiveAsync(buffer.AsMemory(held), SocketFlags.None) : await stream.ReadAsync(buffer.AsMemory(held));
                    if (read == 0)
                    {
                        return;
                    }

                    held += read;
                    if (!parse)
                    {
                        held = 0;
                        continue;
                    }

                    int at = 0;
                    while (held - at >= 5)
                    {
                        int length = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(at + 1));
                        if (length < 4 || length > buffer.Length - 1)
                        {
                            // A large DataRow: skip the frame without keeping it.
                            parse = false;
                            Volatile.Write(ref lastCode, 0);
                            break;
                        }

                        if (held - at < length + 1)
                        {
                            break;
                        }

                        Look(buffer.AsSpan(at, length + 1));
                        at += length + 1;
                    }

                    buffer.AsSpan(at, held - at).CopyTo(buffer);
                    held -= at;
                    if (!parse)
                    {
                        held = 0;
                    }
                }
            }
            catch (Exception exception) when (exception is SocketException or IOException or ObjectDisposedException)
            {
                // Reset by the proxy: a close.
            }
        }

        private void Look(ReadOnlySpan<byte> frame)
        {
            Volatile.Write(ref lastCode, frame[0]);
            if (frame[0] == (byte)'Z')
            {
                loggedIn.TrySetResult();
            }
            else if (frame[0] == (byte)'E')
            {
                string? code = null;
                bool fatal = false;
                ReadOnlySpan<byte> fields = frame[5..];
                while (fields.Length > 1 && fields[0] != 0)
                {
                    int end = fields[1..].IndexOf((byte)0);
                    if (end < 0)
                    {
                        break;
                    }

                    string value = Utf8.GetString(fields.Slice(1, end));
                    if (fields[0] == (byte)'C')
                    {
                        code = value;
                    }
                    else if (fields[0] == (byte)'V')
                    {
                        fatal = value is "FATAL" or "PANIC";
                    }

                    fields = fields[(end + 2)..];
                }

                ErrorCode = code;
                Fatal = fatal;
            }
        }
    }
}
