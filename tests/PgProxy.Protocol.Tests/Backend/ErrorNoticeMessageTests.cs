using System.Buffers;
using System.Text;
using PgProxy.Protocol.Backend;

namespace PgProxy.Protocol.Tests.Backend;

public class ErrorNoticeMessageTests
{
    private static readonly KeyValuePair<char, string>[] Fields =
    [
        new('S', "ERREUR"),
        new('V', "ERROR"),
        new('C', "42P01"),
        new('M', "la relation « t » n'existe pas"),
        new('D', "detail"),
        new('H', "hint"),
        new('P', "15"),
        new('W', "where"),
        new('Z', "a field PgProxy does not name"),
    ];

    private static byte[] Body(BackendMessageCode code) => Written.Body(code, output => ErrorNoticeMessage.Write(output, code, Encoding.UTF8, Fields));

    [Fact]
    public void Writes_a_hand_computed_message()
    {
        byte[] bytes = Written.Bytes(output => ErrorNoticeMessage.Write(output, BackendMessageCode.NoticeResponse, Encoding.UTF8, [new('S', "NOTICE"), new('M', "hi")]));

        Assert.Equal([(byte)'N', 0, 0, 0, 17, .. "SNOTICE\0Mhi\0\0"u8], bytes);
    }

    [Theory]
    [InlineData(BackendMessageCode.ErrorResponse)]
    [InlineData(BackendMessageCode.NoticeResponse)]
    public void Typed_fields_round_trip_in_order_from_every_split(BackendMessageCode code)
    {
        foreach (ReadOnlySequence<byte> split in Written.Splits(Body(code)))
        {
            Assert.True(ErrorNoticeMessage.TryRead(split, Encoding.UTF8, out ErrorFields fields));
            Assert.Equal(Fields, fields.All);
            Assert.Equal("ERREUR", fields.Severity);
            Assert.Equal("ERROR", fields.SeverityNonLocalized);
            Assert.Equal("42P01", fields.SqlState);
            Assert.Equal("la relation « t » n'existe pas", fields.Message);
            Assert.Equal("detail", fields.Detail);
            Assert.Equal("hint", fields.Hint);
            Assert.Equal("15", fields.Position);
            Assert.Equal("where", fields.Where);
            Assert.Null(fields.Get(ErrorFieldCodes.ConstraintName));
        }
    }

    [Fact]
    public void Every_truncation_is_rejected()
    {
        foreach (ReadOnlySequence<byte> prefix in Written.Prefixes(Body(BackendMessageCode.ErrorResponse)))
        {
            Assert.False(ErrorNoticeMessage.TryRead(prefix, Encoding.UTF8, out ErrorFields fields));
            Assert.Empty(fields.All);
        }
    }

    [Fact]
    public void Bytes_after_the_terminator_or_text_invalid_in_a_strict_encoding_are_rejected()
    {
        Assert.False(ErrorNoticeMessage.TryRead(new ReadOnlySequence<byte>("Mx\0\0M"u8.ToArray()), Encoding.UTF8, out _));
        Assert.False(ErrorNoticeMessage.TryRead(new ReadOnlySequence<byte>([(byte)'M', 0xC3, 0, 0]), PostgresEncodings.Utf8, out _));
    }

    [Fact]
    public void The_old_field_reader_keeps_what_is_well_formed()
    {
        byte[] body = Body(BackendMessageCode.ErrorResponse);

        Assert.Equal(Fields, BackendMessages.ReadFields(new ReadOnlySequence<byte>(body), Encoding.UTF8));
        Assert.Equal(Fields[..2], BackendMessages.ReadFields(new ReadOnlySequence<byte>("SERREUR\0VERROR\0Cunterminated"u8.ToArray()), Encoding.UTF8));
    }

    [Fact]
    public void Only_error_and_notice_codes_are_written()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Written.Bytes(output => ErrorNoticeMessage.Write(output, BackendMessageCode.DataRow, Encoding.UTF8, Fields)));
    }

    [Fact]
    public void The_proxy_s_own_errors_read_back_typed()
    {
        byte[] message = ErrorResponseWriter.Build(ErrorSeverity.Fatal, SqlStates.TooManyConnections, "sorry, too many clients already");

        Assert.True(ErrorNoticeMessage.TryRead(new ReadOnlySequence<byte>(message, 5, message.Length - 5), Encoding.UTF8, out ErrorFields fields));
        Assert.Equal(("FATAL", "FATAL", "53300", "sorry, too many clients already"), (fields.Severity, fields.SeverityNonLocalized, fields.SqlState, fields.Message));
    }
}
