using System.Buffers.Binary;
using PgProxy.Protocol.Authentication;

namespace PgProxy.Protocol.Tests.Authentication;

public sealed class PasswordMessagesTests
{
    [Fact]
    public void The_md5_verifier_is_what_PostgreSQL_stores()
    {
        // SELECT 'md5' || md5('md5_pass' || 'md5_user'), as pg_authid holds it with password_encryption = md5.
        Assert.Equal("md5e473002ecaa9bfd0c982506b1bc2fe0b", PasswordMessages.Md5Verifier("md5_user", "md5_pass"));
        Assert.True(PasswordMessages.IsMd5Verifier(PasswordMessages.Md5Verifier("md5_user", "md5_pass")));
    }

    [Theory]
    [InlineData("md5")]
    [InlineData("md5ABCDEF0123456789abcdef0123456789")]
    [InlineData("SCRAM-SHA-256$4096:c2FsdA==$a:b")]
    [InlineData("secret")]
    public void Anything_else_is_not_an_md5_verifier(string text) => Assert.False(PasswordMessages.IsMd5Verifier(text));

    [Fact]
    public void The_md5_response_is_what_libpq_sends_for_the_password()
    {
        byte[] salt = [1, 2, 3, 4];
        string verifier = PasswordMessages.Md5Verifier("ops", "secret");

        // libpq: "md5" || md5(md5(password || user) in hex || salt), computed apart with Python's hashlib.
        const string expected = "md5e4a3abfd2dcd3ed6a55268eb943a7b63";
        Assert.Equal("md537c595ec5e37eb57a7caffe25056ee5a", verifier);

        Assert.Equal(expected, PasswordMessages.Md5Response(verifier, salt));
        Assert.True(PasswordMessages.Md5Matches(expected, PasswordMessages.Md5Response(verifier, salt)));
        Assert.False(PasswordMessages.Md5Matches(expected, PasswordMessages.Md5Response(verifier, [4, 3, 2, 1])));
    }

    [Fact]
    public void The_md5_request_carries_code_5_and_the_salt()
    {
        byte[] message = PasswordMessages.BuildMd5Request([9, 8, 7, 6]);

        Assert.Equal([(byte)'R', 0, 0, 0, 12, 0, 0, 0, 5, 9, 8, 7, 6], message);
        Assert.Equal(AuthenticationCodes.Md5Password, BinaryPrimitives.ReadInt32BigEndian(message.AsSpan(5)));
    }

    [Fact]
    public void AuthenticationOk_is_code_0()
    {
        Assert.Equal([(byte)'R', 0, 0, 0, 8, 0, 0, 0, 0], PasswordMessages.AuthenticationOk.ToArray());
    }

    [Fact]
    public void A_password_message_is_one_terminated_string()
    {
        Assert.True(PasswordMessages.TryReadPassword("md5abc\0"u8, out string password));
        Assert.Equal("md5abc", password);
        Assert.False(PasswordMessages.TryReadPassword("md5abc"u8, out _));
        Assert.False(PasswordMessages.TryReadPassword("a\0b\0"u8, out _));
    }
}
