using System.Security.Cryptography;

namespace PgProxy.Core.Pooling;

/// <summary>
/// A statement as a Parse defines it: its text and parameter types (the Parse body after the name), and the name
/// PgProxy gives it on server connections. The name comes from a hash of the definition, so clients that prepare the
/// same statement share it on every connection, whatever they call it.
/// </summary>
internal sealed class PreparedShape
{
    /// <summary>Prefix of every statement name PgProxy uses on a server connection in transaction pooling.</summary>
    public const string NamePrefix = "pgproxy_";

    private PreparedShape(string serverName, byte[] definition)
    {
        ServerName = serverName;
        Definition = definition;
    }

    /// <summary>The statement's name on server connections.</summary>
    public string ServerName { get; }

    /// <summary>The Parse body after the statement name: the query text, NUL, the parameter count and types.</summary>
    public byte[] Definition { get; }

    /// <summary>The shape of a Parse body's definition (copied: it is a slice of the receive buffer).</summary>
    public static PreparedShape Of(ReadOnlySpan<byte> definition)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(definition, hash);

        // 96 bits: a collision between two statements of one pool is not a practical concern; the name stays short.
        return new PreparedShape(NamePrefix + Convert.ToHexStringLower(hash[..12]), definition.ToArray());
    }
}

/// <summary>
/// One client's prepared statements in transaction pooling, by the names the client gave them, and its unnamed
/// statement (which PostgreSQL keeps until the next unnamed Parse or simple Query). Guarded by the sequencer's gate.
/// </summary>
internal sealed class ClientStatements
{
    private readonly Dictionary<string, PreparedShape> named = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PreparedShape>.AlternateLookup<ReadOnlySpan<char>> byChars;

    public ClientStatements()
    {
        byChars = named.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The Parse body (after the empty name) of the client's unnamed statement, if it has one now.</summary>
    public ReadOnlyMemory<byte>? Unnamed { get; set; }

    /// <summary>Whether the connection linked now has received the client's unnamed statement in this link.</summary>
    public bool UnnamedOnLink { get; set; }

    public bool TryGet(ReadOnlySpan<char> name, out PreparedShape shape) => byChars.TryGetValue(name, out shape!);

    public bool Contains(ReadOnlySpan<char> name) => byChars.ContainsKey(name);

    public void Add(string name, PreparedShape shape) => named[name] = shape;

    public bool Remove(ReadOnlySpan<char> name) => byChars.Remove(name);

    /// <summary>Removes <paramref name="name"/> only while it still names <paramref name="shape"/> (a failed Parse's undo).</summary>
    public void RemoveIf(string name, PreparedShape shape)
    {
        if (named.TryGetValue(name, out PreparedShape? current) && ReferenceEquals(current, shape))
        {
            named.Remove(name);
        }
    }

    /// <summary>DEALLOCATE ALL, DISCARD ALL: the client's statements only.</summary>
    public void Clear()
    {
        named.Clear();
        Unnamed = null;
    }
}

/// <summary>
/// The statements PgProxy has prepared on one server connection, least recently used first; at <c>prepared-statements</c>
/// the oldest is closed to make room, unless the link now has used it (a portal bound from it in this transaction would
/// close with it). Guarded by the sequencer's gate of the session the connection is linked to.
/// </summary>
internal sealed class ServerStatements(int capacity)
{
    private readonly Dictionary<string, LinkedListNode<Use>> byName = new(StringComparer.Ordinal);
    private readonly LinkedList<Use> byUse = new();
    private long link;

    /// <summary>The connection is linked to a client again: what it uses from now on belongs to this link.</summary>
    public void BeginLink() => link++;

    /// <summary>Whether the statement is prepared there; a use moves it to the most recent end.</summary>
    public bool Touch(string serverName)
    {
        if (!byName.TryGetValue(serverName, out LinkedListNode<Use>? node))
        {
            return false;
        }

        node.Value.Link = link;
        if (node != byUse.Last)
        {
            byUse.Remove(node);
            byUse.AddLast(node);
        }

        return true;
    }

    /// <summary>Records a statement as prepared; returns the least recently used one to close when that makes one too many.</summary>
    public string? Add(string serverName)
    {
        if (Touch(serverName))
        {
            return null;
        }

        byName[serverName] = byUse.AddLast(new Use(serverName, link));
        if (byName.Count <= capacity || byUse.First is not { } oldest || oldest.Value.Link == link)
        {
            return null;
        }

        byUse.RemoveFirst();
        byName.Remove(oldest.Value.Name);
        return oldest.Value.Name;
    }

    public void Remove(string serverName)
    {
        if (byName.Remove(serverName, out LinkedListNode<Use>? node))
        {
            byUse.Remove(node);
        }
    }

    private sealed class Use(string name, long link)
    {
        public string Name { get; } = name;

        public long Link { get; set; } = link;
    }
}
