using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;

namespace PgProxy.Abstractions;

/// <summary>
/// What an interceptor knows of the session it runs in. One instance per client session, handed to every
/// interceptor call of that session.
/// </summary>
public interface ISessionContext
{
    /// <summary>The <c>listen.name</c> of the instance the client connected to.</summary>
    string InstanceName { get; }

    /// <summary>The client's address and port.</summary>
    EndPoint? ClientAddress { get; }

    /// <summary>The <c>user</c> start-up parameter.</summary>
    string User { get; }

    /// <summary>The <c>database</c> start-up parameter (PostgreSQL's default: the user name).</summary>
    string Database { get; }

    /// <summary>The current <c>application_name</c>, as the client set it at start-up.</summary>
    string? ApplicationName { get; }

    /// <summary>Every start-up parameter, as relayed to the server (after start-up interceptors).</summary>
    IReadOnlyDictionary<string, string> StartupParameters { get; }

    /// <summary>The session's <c>client_encoding</c>: query text is decoded and re-encoded with it.</summary>
    Encoding ClientEncoding { get; }

    /// <summary>The transaction status of the last ReadyForQuery.</summary>
    TransactionStatus TransactionStatus { get; }

    /// <summary>A per-session bag for plugins to keep state between calls. Not shared between sessions.</summary>
    IDictionary<string, object?> State { get; }

    /// <summary>A logger that writes to the intercept log.</summary>
    ILogger Logger { get; }

    /// <summary>
    /// Runs a read-only query on the session's own upstream connection, between the client's requests, and returns
    /// its rows (text format). The client sees nothing of it.
    /// </summary>
    /// <exception cref="UpstreamQueryException">The server reported an error, or the session is in a failed transaction.</exception>
    Task<UpstreamQueryResult> QueryUpstreamAsync(string sql, CancellationToken cancellationToken = default);
}
