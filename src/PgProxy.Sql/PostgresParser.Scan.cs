using System.Text;
using PgProxy.Sql.Native;

namespace PgProxy.Sql;

public static unsafe partial class PostgresParser
{
    /// <summary>
    /// Splits a query into PostgreSQL's lexical tokens, with string positions. Works on text the grammar rejects
    /// (only lexical errors, such as an unterminated quote, fail). Comments (<c>-- …</c> and <c>/* … */</c>) are not
    /// tokens: libpg_query reports them as <see cref="PgQuery.Token.SqlComment"/> and <see cref="PgQuery.Token.CComment"/>,
    /// and they are left out here, so that a comment between two tokens never separates them; whatever lies between
    /// two tokens is whitespace or comments. Quoted identifiers, string constants (including dollar-quoted ones) are
    /// single tokens, quotes included.
    /// </summary>
    /// <exception cref="SqlParseException">The query has a lexical error, or more than <see cref="MaxSignRun"/> + and - signs in a row.</exception>
    /// <exception cref="SqlParserUnavailableException">libpg_query is not installed.</exception>
    public static SqlTokens Scan(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        EnsureAvailable();
        RefuseLongSignRuns(sql);
        using NativeText text = new(sql);
        PgQueryNative.PgQueryScanResult result = PgQueryNative.Scan(text.Pointer);
        try
        {
            ThrowOnError(result.Error);
            var message = new ReadOnlySpan<byte>(result.Tokens.Data, checked((int)result.Tokens.Length));
            return new SqlTokens(sql, ScanResultDecoder.Decode(message, sql, Ascii.IsValid(sql)));
        }
        finally
        {
            PgQueryNative.FreeScanResult(result);
        }
    }
}
