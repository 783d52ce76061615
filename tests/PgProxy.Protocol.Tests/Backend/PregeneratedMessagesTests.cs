using System.Buffers;
using PgProxy.Protocol.Backend;

namespace PgProxy.Protocol.Tests.Backend;

public sealed class PregeneratedMessagesTests
{
    [Fact]
    public void The_empty_messages_are_a_type_byte_and_length_4()
    {
        Assert.Equal([(byte)'1', 0, 0, 0, 4], PregeneratedMessages.ParseComplete.ToArray());
        Assert.Equal([(byte)'2', 0, 0, 0, 4], PregeneratedMessages.BindComplete.ToArray());
        Assert.Equal([(byte)'3', 0, 0, 0, 4], PregeneratedMessages.CloseComplete.ToArray());
        Assert.Equal([(byte)'n', 0, 0, 0, 4], PregeneratedMessages.NoData.ToArray());
        Assert.Equal([(byte)'I', 0, 0, 0, 4], PregeneratedMessages.EmptyQueryResponse.ToArray());
    }

    [Fact]
    public void ReadyForQuery_idle_is_what_the_writer_writes()
    {
        Assert.Equal(Written.Bytes(output => ReadyForQueryMessage.Write(output, TransactionStatus.Idle)), PregeneratedMessages.ReadyForQueryIdle.ToArray());
    }

    [Fact]
    public void A_parameter_description_holds_its_count_and_type_oids()
    {
        Assert.Equal([0, 0], Written.Body(BackendMessageCode.ParameterDescription, output => ParameterDescriptionMessage.Write(output, [])));
        Assert.Equal([0, 1, 0, 0, 0, 25], Written.Body(BackendMessageCode.ParameterDescription, output => ParameterDescriptionMessage.Write(output, [25])));
    }
}
