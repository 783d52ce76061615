using System.Buffers.Binary;
using System.Text;
using PgProxy.Protocol.Backend;

namespace PgProxy.Protocol.Tests.Backend;

public class ErrorResponseWriterTests
{
    [Fact]
    public void Writes_severity_code_and_message_fields_with_an_exact_length()
    {
        byte[] message = ErrorResponseWriter.Build(ErrorSeverity.Fatal, "08001", "could not connect to upstream \"pg\"");

        Assert.Equal((byte)'E', message[0]);
        Assert.Equal(message.Length - 1, BinaryPrimitives.ReadInt32BigEndian(message.AsSpan(1)));
        string fields = Encoding.UTF8.GetString(message, 5, message.Length - 5);
        Assert.Equal("SFATAL\0VFATAL\0C08001\0Mcould not connect to upstream \"pg\"\0\0", fields);
    }

    [Fact]
    public void Non_ascii_messages_are_counted_in_bytes()
    {
        byte[] message = ErrorResponseWriter.Build(ErrorSeverity.Error, "42501", "accès refusé ✋");

        Assert.Equal(message.Length - 1, BinaryPrimitives.ReadInt32BigEndian(message.AsSpan(1)));
        Assert.Contains("SERROR\0", Encoding.UTF8.GetString(message), StringComparison.Ordinal);
    }
}
