using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using PgProxy.Core.Masks;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Tests.Masks;

/// <summary>
/// The byte-level mask path of DataRows: each function written from a value's bytes gives exactly the bytes of
/// <see cref="Mask.Apply"/>'s text, and a rewritten row keeps every value no mask covers as it was.
/// </summary>
public sealed class MaskedRowWriterTests
{
    private static readonly Encoding Utf8 = PostgresEncodings.Utf8;

    public static TheoryData<string> Values() =>
    [
        "",
        "a",
        "12",
        "1234",
        "4111111111111234",
        "5d41402abc4b2a76b9719d911017c592",
        "alice@example.com",
        "x@y",
        "@example.com",
        "no-at-sign",
        "été@exemple.fr",
        "Ünïcödé-1234",
        "e\u0301e\u0301e\u0301e\u0301e\u0301",
        "👩‍💻dev@example.com",
        "🇫🇷🇩🇪🇮🇹🇪🇸",
        "日本語のテキスト5678",
        "line\r\nbreak\r\n",
        "cr\ralone",
        "tab\tand\nnewline",
        "call 555-0100",
    ];

    public static TheoryData<string> Functions() =>
    [
        "{keep-last: 0}",
        "{keep-last: 1}",
        "{keep-last: 4}",
        "{keep-last: 40}",
        "email",
        "hash",
        "{constant: '***'}",
        "{constant: ''}",
        "'null'",
        @"{regex: '\d', replace: '#'}",
    ];

    [Theory]
    [MemberData(nameof(Values))]
    public void Every_function_writes_the_bytes_of_its_text_result(string value)
    {
        foreach (string with in Functions())
        {
            Mask mask = Only(with);
            string? expected = mask.Apply(value);

            byte[]? written = MaskValue(mask, Utf8.GetBytes(value), Utf8);

            Assert.True(expected is null ? written is null : written is not null && Utf8.GetString(written) == expected, $"{with} of \"{value}\": expected \"{expected}\", wrote \"{(written is null ? "NULL" : Utf8.GetString(written))}\"");
        }
    }

    [Theory]
    [InlineData("WIN1252", "Café-1234")]
    [InlineData("LATIN1", "naïve@example.com")]
    [InlineData("SJIS", "日本語のテキスト5678")]
    [InlineData("EUCKR", "한국어 본문 9012")]
    public void Other_client_encodings_are_masked_as_their_text(string clientEncoding, string value)
    {
        Encoding encoding = PostgresEncodings.Find(clientEncoding)!;
        foreach (string with in Functions())
        {
            Mask mask = Only(with);
            string? expected = mask.Apply(value);

            byte[]? written = MaskValue(mask, encoding.GetBytes(value), encoding);

            Assert.Equal(expected is null ? null : encoding.GetBytes(expected), written);
        }
    }

    [Fact]
    public void Keep_last_counts_characters_from_the_end_of_multi_byte_text()
    {
        Mask mask = Only("{keep-last: 4}");

        Assert.Equal("****本文です", Utf8.GetString(MaskValue(mask, Utf8.GetBytes("これは日本文です"), Utf8)!));
        Assert.Equal("**cdée\u0301", Utf8.GetString(MaskValue(mask, Utf8.GetBytes("abcdée\u0301"), Utf8)!));
        Assert.Equal("***", Utf8.GetString(MaskValue(mask, Utf8.GetBytes("ab€"), Utf8)!));
        Assert.Equal("", Utf8.GetString(MaskValue(mask, [], Utf8)!));
    }

    [Fact]
    public void Bytes_that_are_not_text_in_the_client_encoding_become_null()
    {
        byte[] invalid = [0x61, 0x62, 0xC3, 0x28, 0x63, 0x64, 0x65];
        foreach (string with in new[] { "{keep-last: 2}", "email", "hash", @"{regex: 'a', replace: 'b'}" })
        {
            Assert.Null(MaskValue(Only(with), invalid, Utf8));
        }

        // A constant does not read the value: it is written whatever the bytes were.
        Assert.Equal("x"u8.ToArray(), MaskValue(Only("{constant: x}"), invalid, Utf8));
    }

    [Fact]
    public void A_row_keeps_unmasked_values_nulls_and_empty_strings_byte_for_byte()
    {
        Mask mask = Only("{keep-last: 4}");
        byte[] frame = Row([[0x00, 0x01, 0xFF], null, "4111111111111234"u8.ToArray(), [], null, "abc"u8.ToArray(), "été-9876"u8.ToArray()]);

        byte[] written = Rewrite(frame, [null, mask, mask, mask, null, mask, null]);

        Assert.Equal(Row([[0x00, 0x01, 0xFF], null, "************1234"u8.ToArray(), [], null, "***"u8.ToArray(), "été-9876"u8.ToArray()]), written);
    }

    [Fact]
    public void A_row_whose_masked_value_changes_length_is_framed_again()
    {
        byte[] frame = Row(["1"u8.ToArray(), "alice@example.com"u8.ToArray(), "x"u8.ToArray()]);

        Assert.Equal(Row(["1"u8.ToArray(), Encoding.ASCII.GetBytes(Convert.ToHexStringLower(SHA256.HashData("alice@example.com"u8))), "x"u8.ToArray()]), Rewrite(frame, [null, Only("hash"), null]));
        Assert.Equal(Row(["1"u8.ToArray(), null, "x"u8.ToArray()]), Rewrite(frame, [null, Only("'null'"), null]));
        Assert.Equal(Row(["1"u8.ToArray(), "a***@example.com"u8.ToArray(), "x"u8.ToArray()]), Rewrite(frame, [null, Only("email"), null]));
        Assert.Equal(Row(["1"u8.ToArray(), "[redacted value]"u8.ToArray(), "x"u8.ToArray()]), Rewrite(frame, [null, Only("{constant: '[redacted value]'}"), null]));
    }

    [Fact]
    public void A_row_without_masked_columns_is_written_as_it_came()
    {
        byte[] frame = Row(["1"u8.ToArray(), null, "text"u8.ToArray()]);

        Assert.Equal(frame, Rewrite(frame, [null, null, null]));
    }

    [Fact]
    public void A_malformed_row_or_one_with_another_column_count_is_not_written()
    {
        Mask mask = Only("{keep-last: 1}");
        byte[] frame = Row(["ab"u8.ToArray(), "cd"u8.ToArray()]);
        var output = new MaskedRowBuffer();

        Assert.False(MaskedRowWriter.TryWrite(frame, [mask], Utf8, output));
        Assert.False(MaskedRowWriter.TryWrite(frame, [mask, mask, mask], Utf8, output));
        Assert.False(MaskedRowWriter.TryWrite(frame.AsSpan(0, frame.Length - 1), [mask, mask], Utf8, output));

        byte[] negative = (byte[])frame.Clone();
        BinaryPrimitives.WriteInt32BigEndian(negative.AsSpan(7), -2);
        Assert.False(MaskedRowWriter.TryWrite(negative, [mask, mask], Utf8, output));

        byte[] trailing = [.. frame, 0];
        BinaryPrimitives.WriteInt32BigEndian(trailing.AsSpan(1), trailing.Length - 1);
        Assert.False(MaskedRowWriter.TryWrite(trailing, [mask, mask], Utf8, output));
    }

    [Fact]
    public void The_buffer_gives_back_what_a_huge_row_made_it_take()
    {
        var output = new MaskedRowBuffer();
        byte[] huge = new byte[MaskedRowBuffer.RetainedCapacity * 2];
        Array.Fill(huge, (byte)'a');
        byte[] frame = Row([huge]);

        Assert.True(MaskedRowWriter.TryWrite(frame, [Only("{keep-last: 4}")], Utf8, output));
        Assert.Equal(frame.Length, output.Length);

        output.Reset();
        Assert.True(output.GetSpan(1).Length <= MaskedRowBuffer.RetainedCapacity);
    }

    internal static Mask Only(string with) => MaskSets.Build($"      - {{name: m, columns: [t.a], with: {with}}}\n").Masks[0];

    /// <summary>A whole DataRow frame of these values (null: SQL NULL).</summary>
    internal static byte[] Row(byte[]?[] values)
    {
        var writer = new ArrayBufferWriter<byte>();
        ReadOnlyMemory<byte>?[] memories = [.. values.Select(value => value is null ? (ReadOnlyMemory<byte>?)null : value)];
        DataRowMessage.Write(writer, memories);
        return writer.WrittenSpan.ToArray();
    }

    private static byte[] Rewrite(byte[] frame, Mask?[] masks)
    {
        var output = new MaskedRowBuffer();
        Assert.True(MaskedRowWriter.TryWrite(frame, masks, Utf8, output));
        return output.Written.ToArray();
    }

    /// <summary>The value's bytes as a one-column masked row carries them; null for SQL NULL.</summary>
    private static byte[]? MaskValue(Mask mask, byte[] value, Encoding encoding)
    {
        var output = new MaskedRowBuffer();
        Assert.True(MaskedRowWriter.TryWrite(Row([value]), [mask], encoding, output));
        byte[] row = output.Written.ToArray();
        Assert.Equal(row.Length - 1, BinaryPrimitives.ReadInt32BigEndian(row.AsSpan(1)));
        int length = BinaryPrimitives.ReadInt32BigEndian(row.AsSpan(7));
        return length == -1 ? null : row.AsSpan(11, length).ToArray();
    }
}
