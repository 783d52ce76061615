namespace PgProxy.Sql.Tests;

/// <summary>Password literals found by the lexer and replaced by the marker; everything else kept as written.</summary>
public sealed class PasswordRedactionTests
{
    private const string M = PasswordRedaction.Marker;

    [Theory]
    [InlineData("ALTER ROLE app PASSWORD 'secret'", "ALTER ROLE app PASSWORD " + M)]
    [InlineData("alter user app with encrypted password 'secret' valid until '2030-01-01'", "alter user app with encrypted password " + M + " valid until '2030-01-01'")]
    [InlineData("CREATE ROLE app LOGIN PASSWORD E'se\\'cret'", "CREATE ROLE app LOGIN PASSWORD " + M)]
    [InlineData("CREATE USER app PASSWORD $pw$secret$pw$ CREATEDB", "CREATE USER app PASSWORD " + M + " CREATEDB")]
    [InlineData("CREATE USER app PASSWORD U&'s\\0065cret'", "CREATE USER app PASSWORD " + M)]
    [InlineData("ALTER USER \"App\" PASSWORD 'md5a3556571e93b0d20722ba62be61e8c2d'", "ALTER USER \"App\" PASSWORD " + M)]
    [InlineData("ALTER USER app PASSWORD /* why */ 'secret'", "ALTER USER app PASSWORD /* why */ " + M)]
    [InlineData("ALTER USER app PASSWORD 'secret' /* set by ops */ VALID UNTIL 'infinity'", "ALTER USER app PASSWORD " + M + " VALID UNTIL 'infinity'")]
    [InlineData("CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password 'secret')", "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password " + M + ")")]
    [InlineData("SELECT dblink_connect('host=db password=secret')", "SELECT dblink_connect(" + M + ")")]
    [InlineData("SELECT 1; ALTER ROLE a PASSWORD 'x'; ALTER ROLE b PASSWORD 'y'", "SELECT 1; ALTER ROLE a PASSWORD " + M + "; ALTER ROLE b PASSWORD " + M)]
    public void The_literal_after_password_or_holding_one_is_replaced(string sql, string expected)
    {
        Assert.Equal(expected, PasswordRedaction.Redact(sql));
    }

    [Fact]
    public void The_pre_hashed_scram_verifier_of_psql_password_is_replaced()
    {
        const string verifier = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5c3RvcmVka2V5:c2VydmVya2V5c2VydmVya2V5";
        string redacted = PasswordRedaction.Redact($"ALTER USER app PASSWORD '{verifier}'");

        Assert.Equal("ALTER USER app PASSWORD " + M, redacted);
        Assert.DoesNotContain("c2Fsd", redacted, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("SELECT 'password' AS label", "SELECT " + M + " AS label")] // over-redaction is the safe side
    [InlineData("ALTER ROLE app PASSWORD NULL", "ALTER ROLE app PASSWORD NULL")]
    [InlineData("SHOW password_encryption", "SHOW password_encryption")]
    [InlineData("SELECT \"password\" FROM users WHERE name = 'bob'", "SELECT \"password\" FROM users WHERE name = 'bob'")]
    public void Only_string_constants_are_touched(string sql, string expected)
    {
        Assert.Equal(expected, PasswordRedaction.Redact(sql));
    }

    [Fact]
    public void A_text_without_the_word_is_returned_as_it_is_without_a_scan_or_a_copy()
    {
        const string sql = "SELECT 'secret' FROM t";

        Assert.Same(sql, PasswordRedaction.Redact(sql));
        Assert.False(PasswordRedaction.MayCarryPassword(sql));
        Assert.True(PasswordRedaction.MayCarryPassword("alter role x PassWord 'y'"));
    }

    [Fact]
    public void A_text_the_lexer_cannot_read_is_replaced_whole()
    {
        Assert.Equal(PasswordRedaction.Unreadable, PasswordRedaction.Redact("ALTER ROLE app PASSWORD 'unterminated"));
    }
}
