using System.Text;

namespace PgProxy.Core.Pooling;

/// <summary>
/// Settings as name → value (the text form <c>current_setting</c> gives and <c>set_config</c> takes), names compared
/// as PostgreSQL compares them, without case. A client's are what it asked for (its start-up parameters, then its SETs
/// and RESETs); a server connection's are what has been set on it since its login. Linking the two runs what makes the
/// connection's equal to the client's.
/// </summary>
internal sealed class SessionSettings
{
    private readonly Dictionary<string, string> values;

    public SessionSettings()
    {
        values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
    }

    public SessionSettings(IEnumerable<KeyValuePair<string, string>> values)
    {
        this.values = new Dictionary<string, string>(values, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Bumped at every change, so a link can tell at a glance that nothing changed since the last one.</summary>
    public long Version { get; private set; }

    public IEnumerable<string> Names => values.Keys;

    public int Count => values.Count;

    public bool TryGet(string name, out string value) => values.TryGetValue(name, out value!);

    public void Set(string name, string? value)
    {
        bool changed = value is null ? values.Remove(name) : !values.TryGetValue(name, out string? before) || before != value;
        if (value is not null)
        {
            values[name] = value;
        }

        if (changed)
        {
            Version++;
        }
    }

    /// <summary>Becomes a copy of <paramref name="other"/>.</summary>
    public void CopyFrom(SessionSettings other)
    {
        ArgumentNullException.ThrowIfNull(other);
        values.Clear();
        foreach ((string name, string value) in other.values)
        {
            values[name] = value;
        }

        Version++;
    }

    /// <summary>
    /// One simple Query that makes a server connection whose settings are <paramref name="server"/> have this client's:
    /// <c>set_config</c> for each value that differs, <c>RESET</c> for each set there that the client never set. Null
    /// when they are equal. String literals are E'' whatever standard_conforming_strings says.
    /// </summary>
    public string? ChangesFrom(SessionSettings server)
    {
        ArgumentNullException.ThrowIfNull(server);
        StringBuilder? sql = null;
        bool selecting = false;
        foreach ((string name, string value) in values)
        {
            if (server.values.TryGetValue(name, out string? there) && there == value)
            {
                continue;
            }

            sql ??= new StringBuilder();
            sql.Append(selecting ? ", " : "SELECT ").Append("pg_catalog.set_config(");
            Literal(sql, name).Append(", ");
            Literal(sql, value).Append(", false)");
            selecting = true;
        }

        if (selecting)
        {
            sql!.Append(';');
        }

        foreach (string name in server.values.Keys)
        {
            if (!values.ContainsKey(name))
            {
                (sql ??= new StringBuilder()).Append("RESET \"").Append(name.Replace("\"", "\"\"", StringComparison.Ordinal)).Append("\";");
            }
        }

        return sql?.ToString();
    }

    /// <summary>A query reading the values of <paramref name="names"/> now, one column each (NULL for a name unknown there).</summary>
    public static string ReadQuery(IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        var sql = new StringBuilder("SELECT ");
        for (int i = 0; i < names.Count; i++)
        {
            sql.Append(i == 0 ? "pg_catalog.current_setting(" : ", pg_catalog.current_setting(");
            Literal(sql, names[i]).Append(", true)");
        }

        return sql.ToString();
    }

    /// <summary>A DO block that resets every setting, then sets these: RESET ALL and DISCARD ALL for one client.</summary>
    public string ResetAllTo()
    {
        var sql = new StringBuilder("DO $pgproxy$BEGIN RESET ALL;");
        foreach ((string name, string value) in values)
        {
            sql.Append(" PERFORM pg_catalog.set_config(");
            Literal(sql, name).Append(", ");
            Literal(sql, value).Append(", false);");
        }

        return sql.Append(" END$pgproxy$").ToString();
    }

    internal static StringBuilder Literal(StringBuilder sql, string value) =>
        sql.Append("E'").Append(value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal)).Append('\'');
}
