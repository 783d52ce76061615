using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using PgProxy.Core.Authentication;
using PgProxy.Protocol.Authentication;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Tests.Authentication;

/// <summary>A login PgProxy answers itself (the console's, a pooling instance's), PgProxy as the server, against a client made of the SCRAM and md5 computations.</summary>
public sealed class ProxyAuthenticationTests
{
    private static readonly byte[] Salt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
    private static readonly string ScramVerifierText = ScramVerifier.FromPassword("opspass", Salt, 4096).ToString();

    private readonly Pipe toServer = new();
    private readonly Pipe toClient = new();

    private Task<ProxyLogin> Start(string user, string? verifier) =>
        ProxyAuthentication.RunAsync(toServer.Reader, async message => await toClient.Writer.WriteAsync(message), user, verifier, "admin.auth-file", CancellationToken.None);

    [Fact]
    public async Task Scram_with_the_right_password_succeeds_and_the_server_proves_it_knows_the_verifier()
    {
        Task<ProxyLogin> login = Start("ops", ScramVerifierText);

        (string serverFinal, byte[] expectedSignature) = await ScramClientAsync("opspass");
        ProxyLogin result = await login;

        Assert.True(result.Succeeded);
        Assert.True(Scram.ServerFinalMatches(serverFinal, expectedSignature));

        // The ClientKey the proof carried, to log in to the server with: its hash is the verifier's StoredKey.
        using ServerCredential credential = result.Credential!;
        Assert.True(ScramVerifier.TryParse(ScramVerifierText, out ScramVerifier? verifier));
        Assert.True(Scram.Matches(credential.ClientKey!, verifier!.StoredKey));
    }

    [Fact]
    public async Task Scram_with_a_wrong_password_is_28P01_with_PostgreSQLs_words()
    {
        Task<ProxyLogin> login = Start("ops", ScramVerifierText);

        await ScramClientAsync("wrong", expectFinal: false);
        ProxyLogin result = await login;

        Assert.Equal("28P01", result.Refusal!.SqlState);
        Assert.Equal("password authentication failed for user \"ops\"", result.Refusal.Message);
    }

    [Fact]
    public async Task A_user_without_a_verifier_goes_through_SCRAM_and_fails_like_a_wrong_password()
    {
        Task<ProxyLogin> login = Start("ghost", null);

        await ScramClientAsync("anything", expectFinal: false);
        ProxyLogin result = await login;

        Assert.Equal("28P01", result.Refusal!.SqlState);
        Assert.Equal("password authentication failed for user \"ghost\"", result.Refusal.Message);
        Assert.Contains("no verifier", result.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("md5secret", true)]
    [InlineData("other", false)]
    public async Task Md5_checks_the_answer_against_the_verifier(string password, bool succeeds)
    {
        Task<ProxyLogin> login = Start("mdops", PasswordMessages.Md5Verifier("mdops", "md5secret"));

        byte[] request = await ReadAsync();
        Assert.Equal(AuthenticationCodes.Md5Password, BinaryPrimitives.ReadInt32BigEndian(request.AsSpan(MessageHeader.Size)));
        byte[] salt = request[SaslMessages.AuthenticationDataOffset..];
        string answer = PasswordMessages.Md5Response(PasswordMessages.Md5Verifier("mdops", password), salt);
        await SendAsync(SaslMessages.BuildResponse(Encoding.UTF8.GetBytes(answer + "\0")));
        ProxyLogin result = await login;

        Assert.Equal(succeeds, result.Succeeded);
        Assert.Equal(succeeds ? null : "28P01", result.Refusal?.SqlState);
        Assert.Equal(succeeds ? PasswordMessages.Md5Verifier("mdops", "md5secret") : null, result.Credential?.Md5Verifier);
    }

    [Fact]
    public async Task A_client_that_leaves_during_the_login_is_closed_not_refused()
    {
        Task<ProxyLogin> login = Start("ops", ScramVerifierText);

        await ReadAsync();
        await toServer.Writer.CompleteAsync();
        ProxyLogin result = await login;

        Assert.True(result.Closed);
        Assert.Null(result.Refusal);
    }

    [Fact]
    public async Task Another_mechanism_is_refused_with_28000()
    {
        Task<ProxyLogin> login = Start("ops", ScramVerifierText);

        await ReadAsync();
        await SendAsync(SaslMessages.BuildInitialResponse("SCRAM-SHA-256-PLUS", Encoding.UTF8.GetBytes("p=tls-server-end-point,,n=,r=abc")));

        Assert.Equal("28000", (await login).Refusal!.SqlState);
    }

    /// <summary>The client's side of SCRAM-SHA-256 without channel binding, as libpq runs it; returns the server-final-message and the signature it should carry.</summary>
    private async Task<(string ServerFinal, byte[] ExpectedSignature)> ScramClientAsync(string password, bool expectFinal = true)
    {
        byte[] offer = await ReadAsync();
        Assert.Equal([SaslMessages.ScramSha256], SaslMessages.ReadMechanisms(offer.AsSpan(SaslMessages.AuthenticationDataOffset)));

        string clientNonce = Scram.NewNonce();
        string bare = $"n=,r={clientNonce}";
        await SendAsync(SaslMessages.BuildInitialResponse(SaslMessages.ScramSha256, Encoding.UTF8.GetBytes("n,," + bare)));

        byte[] continued = await ReadAsync();
        string serverFirstText = Encoding.UTF8.GetString(continued, SaslMessages.AuthenticationDataOffset, continued.Length - SaslMessages.AuthenticationDataOffset);
        Assert.True(ScramServerFirst.TryParse(serverFirstText, out ScramServerFirst? serverFirst));
        Assert.StartsWith(clientNonce, serverFirst!.Nonce, StringComparison.Ordinal);

        string withoutProof = $"c={Scram.ChannelBindingOf("n,,")},r={serverFirst.Nonce}";
        byte[] authMessage = Scram.AuthMessage(bare, serverFirstText, withoutProof);
        byte[] clientKey = Scram.ClientKeyFromPassword(password, serverFirst.Salt, serverFirst.Iterations);
        await SendAsync(SaslMessages.BuildResponse(Encoding.UTF8.GetBytes($"{withoutProof},p={Convert.ToBase64String(Scram.ClientProof(clientKey, authMessage))}")));
        if (!expectFinal)
        {
            return (string.Empty, []);
        }

        byte[] final = await ReadAsync();
        ScramVerifier mine = ScramVerifier.FromPassword(password, serverFirst.Salt, serverFirst.Iterations);
        return (Encoding.UTF8.GetString(final, SaslMessages.AuthenticationDataOffset, final.Length - SaslMessages.AuthenticationDataOffset), Scram.ServerSignature(mine.ServerKey, authMessage));
    }

    private async Task<byte[]> ReadAsync() => (await AuthenticationFrames.ReadAsync(toClient.Reader, CancellationToken.None))!;

    private async Task SendAsync(byte[] message) => await toServer.Writer.WriteAsync(message);
}
