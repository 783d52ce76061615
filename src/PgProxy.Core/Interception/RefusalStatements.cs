using System.Globalization;

namespace PgProxy.Core.Interception;

/// <summary>
/// A refused query is replaced by a statement that makes the server itself raise the refusal's error. The server then
/// does what it does for any error: it rolls back an implicit transaction or marks an explicit one failed, skips an
/// extended batch up to its Sync, and sends the right ReadyForQuery. Client and server never disagree about the
/// transaction, and responses stay in order.
/// </summary>
internal static class RefusalStatements
{
    public static string RaiseError(string sqlState, string message)
    {
        string messageTag = UnusedTag(message, "pgproxy_message");
        string bodyTag = UnusedTag(message, "pgproxy_refusal");
        return string.Create(
            CultureInfo.InvariantCulture,
            $"DO ${bodyTag}$BEGIN RAISE EXCEPTION USING ERRCODE = '{sqlState}', MESSAGE = ${messageTag}${message}${messageTag}$; END${bodyTag}$");
    }

    // Dollar quoting needs a tag the quoted text does not contain.
    private static string UnusedTag(string text, string tag)
    {
        while (text.Contains(tag, StringComparison.Ordinal))
        {
            tag += "_";
        }

        return tag;
    }
}
