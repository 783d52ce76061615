using System.Buffers;
using PgProxy.Protocol.Backend;

namespace PgProxy.Protocol.Tests.Backend;

public class ReadyForQueryMessageTests
{
    [Theory]
    [InlineData(TransactionStatus.Idle, 'I')]
    [InlineData(TransactionStatus.InTransaction, 'T')]
    [InlineData(TransactionStatus.Failed, 'E')]
    public void Writes_the_status_byte_and_reads_it_back(TransactionStatus status, char wire)
    {
        byte[] bytes = Written.Bytes(output => ReadyForQueryMessage.Write(output, status));

        Assert.Equal(new byte[] { (byte)'Z', 0, 0, 0, 5, (byte)wire }, bytes);
        Assert.True(ReadyForQueryMessage.TryRead(new ReadOnlySequence<byte>(bytes, 5, 1), out TransactionStatus read));
        Assert.Equal(status, read);
        Assert.True(ReadyForQueryMessage.TryRead(Segments.AfterEmptySegment([(byte)wire]), out read));
        Assert.Equal(status, read);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { (byte)'X' })]
    [InlineData(new byte[] { 0 })]
    [InlineData(new byte[] { (byte)'I', (byte)'I' })]
    public void Anything_but_one_known_status_byte_is_rejected(byte[] body)
    {
        Assert.False(ReadyForQueryMessage.TryRead(new ReadOnlySequence<byte>(body), out TransactionStatus status));
        Assert.Equal(TransactionStatus.Unknown, status);
    }

    [Fact]
    public void The_unknown_status_is_not_written()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Written.Bytes(output => ReadyForQueryMessage.Write(output, TransactionStatus.Unknown)));
    }
}
