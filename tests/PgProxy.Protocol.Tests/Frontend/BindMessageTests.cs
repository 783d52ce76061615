using System.Text;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Protocol.Tests.Frontend;

public sealed class BindMessageTests
{
    [Fact]
    public void Text_parameters_are_written_with_their_lengths_and_null_as_minus_one()
    {
        byte[] bytes = Written.Bytes(output => QueryMessages.WriteBindUnnamed(output, Encoding.UTF8, ["é", null]));

        byte[] expected =
        [
            (byte)'B', 0, 0, 0, 22,
            0, 0,             // unnamed portal and statement
            0, 0,             // no parameter formats: all text
            0, 2,             // two parameters
            0, 0, 0, 2, 0xC3, 0xA9,
            0xFF, 0xFF, 0xFF, 0xFF,
            0, 0,             // no result formats: all text
        ];
        Assert.Equal(expected, bytes);
    }

    [Fact]
    public void Without_parameters_it_is_the_constant_unnamed_bind()
    {
        Assert.Equal(
            Written.Bytes(QueryMessages.WriteBindUnnamed),
            Written.Bytes(output => QueryMessages.WriteBindUnnamed(output, Encoding.UTF8, [])));
    }

    [Fact]
    public void Reading_a_bind_counts_its_parameters_and_keeps_its_result_formats()
    {
        byte[] bytes = Written.Bytes(output => QueryMessages.WriteBindUnnamed(output, Encoding.UTF8, ["a", null, "c"]));

        Assert.True(ExtendedMessages.TryReadBind(new System.Buffers.ReadOnlySequence<byte>(bytes, 5, bytes.Length - 5), out string portal, out string statement, out int parameters, out short[] formats));
        Assert.Equal((string.Empty, string.Empty, 3), (portal, statement, parameters));
        Assert.Empty(formats);
    }
}
