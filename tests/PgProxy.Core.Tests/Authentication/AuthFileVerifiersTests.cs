using PgProxy.Core.Authentication;
using PgProxy.Core.Tls;

namespace PgProxy.Core.Tests.Authentication;

/// <summary>The auth-file format: quoted user and verifier per line, comments, doubled quotes, and errors by line number.</summary>
public sealed class AuthFileVerifiersTests : IDisposable
{
    private readonly string file = Path.Combine(Path.GetTempPath(), $"pgproxy-users-{Guid.NewGuid():N}.txt");

    public void Dispose() => File.Delete(file);

    [Fact]
    public async Task Users_are_found_by_exact_name_and_comments_are_skipped()
    {
        await File.WriteAllTextAsync(file, "# comment\n; also a comment\n\n\"report\"  \"SCRAM-SHA-256$4096:c2FsdA==$a:b\"\n\"say \"\"hi\"\"\" \"v2\"\n");
        AuthFileVerifiers verifiers = AuthFileVerifiers.Load(file);

        Assert.Equal("SCRAM-SHA-256$4096:c2FsdA==$a:b", (await verifiers.FindAsync("report", "db", CancellationToken.None)).Verifier);
        Assert.Equal("v2", (await verifiers.FindAsync("say \"hi\"", "db", CancellationToken.None)).Verifier);
        VerifierLookup missing = await verifiers.FindAsync("Report", "db", CancellationToken.None);
        Assert.Null(missing.Verifier);
        Assert.Contains("user \"Report\" is not in auth.auth-file", missing.Failure, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("report SCRAM-SHA-256$x")]
    [InlineData("\"report\"\"SCRAM\"")]
    [InlineData("\"report\" \"unterminated")]
    [InlineData("\"report\" \"v\" extra")]
    public async Task A_malformed_line_is_named_by_its_number(string line)
    {
        await File.WriteAllTextAsync(file, $"\"ok\" \"v\"\n{line}\n");

        var error = Assert.Throws<SecurityMaterialException>(() => AuthFileVerifiers.Load(file));

        Assert.Equal($"auth.auth-file {file}:2: expected \"user\" \"SCRAM-SHA-256$...\"", error.Message);
    }

    [Fact]
    public void A_missing_file_is_named()
    {
        var error = Assert.Throws<SecurityMaterialException>(() => AuthFileVerifiers.Load(file));

        Assert.Equal($"auth.auth-file {file}: the file does not exist", error.Message);
    }
}
