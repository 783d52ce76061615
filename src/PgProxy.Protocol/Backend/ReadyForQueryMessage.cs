using System.Buffers;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Backend;

/// <summary>Reads and writes ReadyForQuery ('Z'): one byte, the transaction status.</summary>
public static class ReadyForQueryMessage
{
    /// <summary>Bytes of the body: the status byte alone.</summary>
    public const int BodyLength = 1;

    /// <summary>Decodes a ReadyForQuery body; false unless it is exactly one of 'I', 'T' or 'E'.</summary>
    public static bool TryRead(in ReadOnlySequence<byte> body, out TransactionStatus status)
    {
        status = TransactionStatus.Unknown;

        // Read through a SequenceReader, not FirstSpan: a sequence may open with an empty segment.
        var reader = new SequenceReader<byte>(body);
        if (body.Length != BodyLength || !reader.TryRead(out byte code))
        {
            return false;
        }

        var read = (TransactionStatus)code;
        if (read is not (TransactionStatus.Idle or TransactionStatus.InTransaction or TransactionStatus.Failed))
        {
            return false;
        }

        status = read;
        return true;
    }

    /// <summary>Writes a whole ReadyForQuery.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="status"/> is not one the protocol defines.</exception>
    public static void Write(IBufferWriter<byte> output, TransactionStatus status)
    {
        if (status is not (TransactionStatus.Idle or TransactionStatus.InTransaction or TransactionStatus.Failed))
        {
            throw new ArgumentOutOfRangeException(nameof(status), status, "ReadyForQuery carries 'I', 'T' or 'E'");
        }

        var writer = MessageWriter.Start(output, BackendMessageCode.ReadyForQuery, BodyLength);
        writer.WriteByte((byte)status);
        writer.Complete();
    }
}
