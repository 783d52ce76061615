using System.Buffers;
using System.Text;
using PgProxy.Protocol.Authentication;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;
using PgProxy.Protocol.Startup;

namespace PgProxy.Protocol.Tests.Fuzzing;

/// <summary>
/// Every decoder of PgProxy.Protocol that reads bytes from outside, as fuzz targets: each takes any bytes and must
/// return (true or false), never throw. Shared by the CI replay (<c>FuzzReplayTests</c>) and the SharpFuzz
/// harness under fuzz/, which links this file.
/// </summary>
public static class FuzzTargets
{
    /// <summary>The targets by name, as the fuzz harness takes them on its command line.</summary>
    public static IReadOnlyDictionary<string, Action<byte[]>> All { get; } = new Dictionary<string, Action<byte[]>>(StringComparer.Ordinal)
    {
        ["framing"] = Framing,
        ["startup"] = Startup,
        ["frontend"] = Frontend,
        ["backend"] = Backend,
        ["scram"] = ScramMessages,
    };

    /// <summary>A stream of frames, read as the pumps read it, in pieces of any size, with a small max length.</summary>
    public static void Framing(byte[] data)
    {
        for (int split = 1; split <= Math.Min(data.Length, 3); split++)
        {
            var buffer = Segments(data, split);
            while (FrameReader.TryReadFrame(ref buffer, 4096, out Frame frame) == FrameReadStatus.Complete)
            {
                Decode(frame.Code, frame.Body);
            }
        }

        var header = new ReadOnlySequence<byte>(data);
        _ = MessageHeader.TryPeek(header, out _);
    }

    /// <summary>Start-up packets: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest, and garbage.</summary>
    public static void Startup(byte[] data)
    {
        var buffer = Segments(data, 2);
        while (StartupPacketReader.TryRead(ref buffer, out StartupPacket? packet, out _) == StartupReadStatus.Complete)
        {
            _ = packet!.GetParameter("user");
        }
    }

    /// <summary>One frontend message body, its type from the first byte.</summary>
    public static void Frontend(byte[] data)
    {
        if (data.Length == 0)
        {
            return;
        }

        var body = new ReadOnlySequence<byte>(data, 1, data.Length - 1);
        _ = QueryMessages.TryReadQuery(body, Encoding.UTF8, out _);
        _ = QueryMessages.TryReadParse(body, Encoding.UTF8, out _);
        _ = ExtendedMessages.TryReadParseName(body, out _);
        _ = ExtendedMessages.TryReadBind(body, out _, out _, out _, out _);
        _ = ExtendedMessages.TryReadTarget(body, out _, out _);
        _ = ExtendedMessages.TryReadExecute(body, out _);
        _ = PasswordMessages.TryReadPassword(data.AsSpan(1), out _);
        _ = SaslMessages.TryReadInitialResponse(data.AsSpan(1), out _, out _);
    }

    /// <summary>One backend message body, read by every backend decoder the proxy has.</summary>
    public static void Backend(byte[] data)
    {
        if (data.Length == 0)
        {
            return;
        }

        Decode(data[0], new ReadOnlySequence<byte>(data, 1, data.Length - 1));
        try
        {
            _ = SaslMessages.ReadMechanisms(data.AsSpan(1));
        }
        catch (InvalidDataException)
        {
            // Its documented refusal, which every caller handles.
        }
    }

    /// <summary>SCRAM messages of both sides, and stored verifiers.</summary>
    public static void ScramMessages(byte[] data)
    {
        string text = Encoding.UTF8.GetString(data);
        _ = ScramClientFirst.TryParse(text, out _);
        _ = ScramServerFirst.TryParse(text, out _);
        _ = ScramClientFinal.TryParse(text, out _);
        _ = ScramVerifier.TryParse(text, out _);
    }

    private static void Decode(byte code, ReadOnlySequence<byte> body)
    {
        Encoding encoding = Encoding.UTF8;
        switch ((char)code)
        {
            case 'T':
                _ = RowDescriptionMessage.TryRead(body, encoding, out _);
                break;
            case 'D':
                _ = DataRowMessage.TryRead(body, out _);
                _ = DataRowMessage.TryReadText(body, encoding, out _);
                break;
            case 'E':
            case 'N':
                _ = ErrorNoticeMessage.TryRead(body, encoding, out _);
                break;
            case 'S':
                _ = ParameterStatusMessage.TryRead(body, out _, out _);
                break;
            case 'Z':
                _ = ReadyForQueryMessage.TryRead(body, out _);
                break;
            case 'K':
                _ = BackendKeyDataMessage.TryRead(body, StartupCodes.Protocol30, out _, out _);
                _ = BackendKeyDataMessage.TryRead(body, StartupCodes.Protocol32, out _, out _);
                break;
            case 'C':
                _ = CommandCompleteMessage.TryRead(body, encoding, out _);
                break;
            default:
                _ = RowDescriptionMessage.TryRead(body, encoding, out _);
                _ = ErrorNoticeMessage.TryRead(body, encoding, out _);
                _ = QueryMessages.TryReadParse(body, encoding, out _);
                _ = ExtendedMessages.TryReadBind(body, out _, out _, out _, out _);
                break;
        }
    }

    /// <summary>The bytes as a sequence of <paramref name="pieces"/> segments, as a pipe hands over what arrived.</summary>
    private static ReadOnlySequence<byte> Segments(byte[] data, int pieces)
    {
        if (pieces <= 1 || data.Length < 2)
        {
            return new ReadOnlySequence<byte>(data);
        }

        int size = Math.Max(1, data.Length / pieces);
        var first = new Segment(data.AsMemory(0, size));
        Segment last = first;
        for (int offset = size; offset < data.Length; offset += size)
        {
            last = last.Append(data.AsMemory(offset, Math.Min(size, data.Length - offset)));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
