using System.Buffers;
using System.Text;
using PgProxy.Protocol.Authentication;

namespace PgProxy.Protocol.Tests.Authentication;

/// <summary>SCRAM-SHA-256 against the worked example of RFC 7677 (user "user", password "pencil").</summary>
public sealed class ScramTests
{
    private const string ClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    private const string ServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    private const string ClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    private const string ServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    private static ScramVerifier RfcVerifier() =>
        ScramVerifier.FromPassword("pencil", Convert.FromBase64String("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);

    [Fact]
    public void The_client_key_recovered_from_the_proof_matches_the_stored_key_and_makes_the_same_proof()
    {
        ScramVerifier verifier = RfcVerifier();
        Assert.True(ScramClientFirst.TryParse(ClientFirst, out ScramClientFirst? first));
        Assert.True(ScramServerFirst.TryParse(ServerFirst, out ScramServerFirst? serverFirst));
        Assert.True(ScramClientFinal.TryParse(ClientFinal, out ScramClientFinal? final));
        Assert.Equal(4096, serverFirst!.Iterations);
        Assert.Equal("biws", final!.ChannelBinding);
        Assert.Equal(Scram.ChannelBindingOf(first!.Gs2Header), final.ChannelBinding);

        byte[] authMessage = Scram.AuthMessage(first.Bare, ServerFirst, final.WithoutProof);
        byte[] clientKey = Scram.RecoverClientKey(verifier.StoredKey, authMessage, final.Proof);

        Assert.True(Scram.Matches(clientKey, verifier.StoredKey));
        Assert.Equal(Scram.ClientKeyFromPassword("pencil", verifier.Salt, 4096), clientKey);
        Assert.Equal(final.Proof, Scram.ClientProof(clientKey, authMessage));
        Assert.True(Scram.ServerFinalMatches(ServerFinal, Scram.ServerSignature(verifier.ServerKey, authMessage)));
    }

    [Fact]
    public void A_proof_made_with_another_password_does_not_match()
    {
        ScramVerifier verifier = RfcVerifier();
        Assert.True(ScramClientFinal.TryParse(ClientFinal, out ScramClientFinal? final));
        byte[] authMessage = Scram.AuthMessage("n=user,r=rOprNGfwEbeRWgbNEkqO", ServerFirst, final!.WithoutProof);
        byte[] wrongProof = Scram.ClientProof(Scram.ClientKeyFromPassword("not-pencil", verifier.Salt, 4096), authMessage);

        Assert.False(Scram.Matches(Scram.RecoverClientKey(verifier.StoredKey, authMessage, wrongProof), verifier.StoredKey));
    }

    [Fact]
    public void A_verifier_round_trips_through_its_text_and_other_hashes_are_not_verifiers()
    {
        ScramVerifier verifier = RfcVerifier();
        Assert.True(ScramVerifier.TryParse(verifier.ToString(), out ScramVerifier? parsed));
        Assert.Equal(verifier.StoredKey, parsed!.StoredKey);
        Assert.Equal(verifier.ServerKey, parsed.ServerKey);
        Assert.Equal(4096, parsed.Iterations);

        Assert.False(ScramVerifier.TryParse("md5a3556571e93b0d20722ba62be61e8c2d", out _));
        Assert.False(ScramVerifier.TryParse("SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB", out _));
        Assert.False(ScramVerifier.TryParse(null, out _));
    }

    [Theory]
    [InlineData("n,,n=,r=abc", 'n')]
    [InlineData("y,,n=,r=abc", 'y')]
    [InlineData("p=tls-server-end-point,,n=,r=abc", 'p')]
    public void Client_first_messages_of_each_binding_flag_parse(string text, char flag)
    {
        Assert.True(ScramClientFirst.TryParse(text, out ScramClientFirst? message));
        Assert.Equal(flag, message!.ChannelBindingFlag);
        Assert.Equal("abc", message.Nonce);
        Assert.Equal("n=,r=abc", message.Bare);
    }

    [Theory]
    [InlineData("n,a=admin,n=,r=abc")]
    [InlineData("n,,n=,r=abc,m=ext")]
    [InlineData("n,,r=abc")]
    [InlineData("x,,n=,r=abc")]
    [InlineData("n,,n=,r=")]
    public void Client_first_messages_PostgreSQL_refuses_do_not_parse(string text) =>
        Assert.False(ScramClientFirst.TryParse(text, out _));

    [Fact]
    public void The_mechanism_list_is_read_and_rebuilt_without_the_binding_variant()
    {
        byte[] offered = SaslMessages.BuildAuthenticationSasl([SaslMessages.ScramSha256Plus, SaslMessages.ScramSha256]);
        var frame = new ReadOnlySequence<byte>(offered);

        Assert.Equal(AuthenticationCodes.Sasl, SaslMessages.AuthenticationCode(frame));
        Assert.Equal([SaslMessages.ScramSha256Plus, SaslMessages.ScramSha256], SaslMessages.ReadMechanisms(offered.AsSpan(9)));
        byte[] expected = [(byte)'R', 0, 0, 0, 23, 0, 0, 0, 10, .. Encoding.ASCII.GetBytes("SCRAM-SHA-256\0\0")];
        Assert.Equal(expected, SaslMessages.BuildAuthenticationSasl([SaslMessages.ScramSha256]));
    }

    [Fact]
    public void An_initial_response_round_trips_and_a_wrong_length_is_refused()
    {
        byte[] message = SaslMessages.BuildInitialResponse(SaslMessages.ScramSha256, "n,,n=,r=abc"u8);
        Assert.Equal((byte)'p', message[0]);

        Assert.True(SaslMessages.TryReadInitialResponse(message.AsSpan(5), out string mechanism, out byte[] payload));
        Assert.Equal(SaslMessages.ScramSha256, mechanism);
        Assert.Equal("n,,n=,r=abc", Encoding.UTF8.GetString(payload));

        message[5 + 14 + 3] ^= 1; // the payload length's low byte, after the type, length and "SCRAM-SHA-256\0"
        Assert.False(SaslMessages.TryReadInitialResponse(message.AsSpan(5), out _, out _));
    }
}
