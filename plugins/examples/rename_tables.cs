// A seed-style plugin: one public static function that takes the query text and returns the text to run.
// Configured as {plugin: rename_tables, function: rewrite_query}; PgProxy finds RewriteQuery by PascalCase.
//
// Use: an application that cannot be changed still queries "legacy_orders", which moved to "sales.orders".
using System.Text.RegularExpressions;

public static class RenameTables
{
    public static string RewriteQuery(string query, ISessionContext context)
    {
        // Whole identifiers only, so "legacy_orders_archive" and 'legacy_orders' in a string stay as they are
        // when they are not the bare word (a real plugin would use PgProxy's SQL scanner to skip literals).
        return LegacyOrders.Replace(query, "sales.orders");
    }

    // Plugins are compiled in memory without source generators: a plain Regex, built once.
    private static readonly Regex LegacyOrders = new(@"(?<![\w.""'])legacy_orders(?![\w""'])", RegexOptions.Compiled);
}
