namespace PgProxy.Core.Configuration;

/// <summary>
/// <c>admin</c>: the console, answered by PgProxy itself. It is the virtual database <see cref="Database"/> on every
/// instance's listener, and also every database on <see cref="Listen"/> when that is set. Without the section, a
/// start-up for database <c>pgproxy</c> is relayed upstream like any other.
/// </summary>
public sealed record AdminConfig
{
    /// <summary>The database name a start-up asks for to reach the console on an instance's listener.</summary>
    public const string Database = "pgproxy";

    /// <summary><c>listen</c>: the console's own address; null when absent (the console is on the instance ports only).</summary>
    public EndpointConfig? Listen { get; init; }

    /// <summary><c>users</c>: who may log in to the console; at least one.</summary>
    public IReadOnlyList<string> Users { get; init; } = [];

    /// <summary><c>auth-file</c>: absolute; lines <c>"user" "SCRAM-SHA-256$..."</c> or <c>"user" "md5..."</c>.</summary>
    public string AuthFile { get; init; } = string.Empty;

    /// <summary><c>tls</c>: TLS of <see cref="Listen"/>, with the keys of <c>listen.tls</c>; disabled unless set.</summary>
    public ListenTlsConfig Tls { get; init; } = ListenTlsConfig.Disabled;

    /// <summary>Equal when every key is equal (a reload compares configurations; the user list by its items).</summary>
    public bool Equals(AdminConfig? other) =>
        other is not null && Listen == other.Listen && Users.SequenceEqual(other.Users) && AuthFile == other.AuthFile && Tls == other.Tls;

    public override int GetHashCode() => HashCode.Combine(Listen, Users.Count, AuthFile, Tls);
}
