using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>One protocol message as received: its type byte and body.</summary>
public sealed record RawMessage(char Code, byte[] Body)
{
    /// <summary>Fields of an ErrorResponse or NoticeResponse, by field type.</summary>
    public IReadOnlyDictionary<char, string> Fields()
    {
        var fields = new Dictionary<char, string>();
        int i = 0;
        while (i < Body.Length && Body[i] != 0)
        {
            char type = (char)Body[i++];
            int end = Array.IndexOf(Body, (byte)0, i);
            fields[type] = Encoding.UTF8.GetString(Body, i, end - i);
            i = end + 1;
        }

        return fields;
    }

    public string SqlState => Fields()['C'];
}

/// <summary>
/// A client over a raw socket, for what real client libraries never send: malformed packets, odd start-ups,
/// and exact control over when bytes are read. Every read has a deadline.
/// </summary>
public sealed class RawPgClient : IAsyncDisposable
{
    private static readonly TimeSpan DefaultDeadline = TimeSpan.FromSeconds(20);
    private readonly Socket socket;
    private Stream stream;

    private RawPgClient(Socket socket)
    {
        this.socket = socket;
        stream = new NetworkStream(socket, ownsSocket: true);
    }

    public Socket Socket => socket;

    /// <summary>SHA-1 hash of the certificate the server showed in <see cref="StartTlsAsync"/>; null before.</summary>
    public string? ServerCertificateHash { get; private set; }

    /// <summary>
    /// Switches to TLS: after an SSLRequest answered 'S', or at once (<paramref name="direct"/>, PostgreSQL 17's direct
    /// TLS). Any server certificate is accepted: tests of verification use real clients.
    /// </summary>
    public async Task StartTlsAsync(bool direct, params string[] alpn)
    {
        if (!direct)
        {
            await SendAsync([0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]);
            char answer = await ReadByteAsync();
            if (answer != 'S')
            {
                throw new InvalidOperationException($"SSLRequest answered '{answer}'");
            }
        }

        var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
        using var deadline = new CancellationTokenSource(DefaultDeadline);
        await ssl.AuthenticateAsClientAsync(
            new SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                ApplicationProtocols = alpn.Length == 0 ? null : [.. alpn.Select(name => new SslApplicationProtocol(name))],
                RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null,
            },
            deadline.Token);
        stream = ssl;
        ServerCertificateHash = ssl.RemoteCertificate?.GetCertHashString();
    }

    public static async Task<RawPgClient> ConnectAsync(string host, int port, int? receiveBufferSize = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (receiveBufferSize is { } size)
        {
            socket.ReceiveBufferSize = size;
        }

        using var deadline = new CancellationTokenSource(DefaultDeadline);
        await socket.ConnectAsync(host, port, deadline.Token);
        return new RawPgClient(socket);
    }

    public static byte[] StartupPacket(int version, params (string Name, string Value)[] parameters)
    {
        var body = new List<byte>();
        foreach ((string name, string value) in parameters)
        {
            body.AddRange(Encoding.UTF8.GetBytes(name));
            body.Add(0);
            body.AddRange(Encoding.UTF8.GetBytes(value));
            body.Add(0);
        }

        body.Add(0);
        var packet = new byte[8 + body.Count];
        BinaryPrimitives.WriteInt32BigEndian(packet, packet.Length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), version);
        body.CopyTo(packet, 8);
        return packet;
    }

    public static byte[] Message(char code, byte[] body)
    {
        var message = new byte[5 + body.Length];
        message[0] = (byte)code;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), body.Length + 4);
        body.CopyTo(message, 5);
        return message;
    }

    public static byte[] Query(string sql) => Message('Q', Encoding.UTF8.GetBytes(sql + "\0"));

    public async Task SendAsync(byte[] bytes)
    {
        using var deadline = new CancellationTokenSource(DefaultDeadline);
        await stream.WriteAsync(bytes, deadline.Token);
    }

    /// <summary>Sends a 3.0 StartupMessage for a trust user and reads up to the first ReadyForQuery.</summary>
    public async Task<List<RawMessage>> StartTrustSessionAsync(string user, string database)
    {
        await SendAsync(StartupPacket(3 << 16, ("user", user), ("database", database)));
        return await ReadUntilReadyAsync();
    }

    /// <summary>
    /// Connects to <paramref name="host"/>:<paramref name="port"/> and logs in as the trust user to the test database
    /// with <paramref name="applicationName"/>, up to its first ReadyForQuery.
    /// </summary>
    public static async Task<RawPgClient> ConnectTrustSessionAsync(string host, int port, string applicationName)
    {
        RawPgClient client = await ConnectAsync(host, port);
        await client.SendAsync(StartupPacket(
            3 << 16,
            ("user", PostgresServer.TrustUser),
            ("database", PostgresServer.Database),
            ("application_name", applicationName)));
        List<RawMessage> startup = await client.ReadUntilReadyAsync();
        Assert.Equal('Z', startup[^1].Code);
        return client;
    }

    /// <summary>Reads one single-byte answer (to SSLRequest or GSSENCRequest).</summary>
    public async Task<char> ReadByteAsync()
    {
        var one = new byte[1];
        await ReadExactlyAsync(one);
        return (char)one[0];
    }

    public async Task<RawMessage> ReadMessageAsync(TimeSpan? deadline = null)
    {
        var header = new byte[5];
        await ReadExactlyAsync(header, deadline);
        int length = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1));
        var body = new byte[length - 4];
        await ReadExactlyAsync(body, deadline);
        return new RawMessage((char)header[0], body);
    }

    public async Task<List<RawMessage>> ReadUntilReadyAsync()
    {
        var messages = new List<RawMessage>();
        while (true)
        {
            RawMessage message = await ReadMessageAsync();
            messages.Add(message);
            if (message.Code == 'Z')
            {
                return messages;
            }
        }
    }

    /// <summary>True when the peer has closed: a read returns no bytes (or the connection is reset) before the deadline.</summary>
    public async Task<bool> IsClosedByPeerAsync(TimeSpan? deadline = null)
    {
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(deadline ?? DefaultDeadline);
        try
        {
            while (true)
            {
                int read = await stream.ReadAsync(buffer, timeout.Token);
                if (read == 0)
                {
                    return true;
                }
            }
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async Task<int> ReadSomeAsync(Memory<byte> buffer, CancellationToken cancellationToken) =>
        await stream.ReadAsync(buffer, cancellationToken);

    private async Task ReadExactlyAsync(byte[] buffer, TimeSpan? deadline = null)
    {
        using var timeout = new CancellationTokenSource(deadline ?? DefaultDeadline);
        await stream.ReadExactlyAsync(buffer, timeout.Token);
    }

    public async ValueTask DisposeAsync() => await stream.DisposeAsync();
}
