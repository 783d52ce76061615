using System.Buffers;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Server;
using PgProxy.Abstractions;
using PgProxy.Core.Sessions;
using PgProxy.Protocol;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Interception;

/// <summary>The <see cref="ISessionContext"/> of one session: identity, encoding, state bag and metadata queries.</summary>
internal sealed class SessionContext : ISessionContext
{
    private readonly ServerProtocolState state;
    private readonly Dictionary<string, string> startupParameters;
    private Encoding? clientEncoding;
    private string clientEncodingName;
    private RedactingLogger? pluginLogger;

    public SessionContext(long sessionId, string instanceName, EndPoint? clientAddress, IEnumerable<KeyValuePair<string, string>> startupParameters, ServerProtocolState state, ILogger interceptLogger)
    {
        SessionId = sessionId;
        InstanceName = instanceName;
        ClientAddress = clientAddress;
        this.state = state;
        this.startupParameters = new Dictionary<string, string>(startupParameters);
        Logger = interceptLogger;
        clientEncodingName = this.startupParameters.GetValueOrDefault("client_encoding") ?? "UTF8";
        clientEncoding = PostgresEncodings.Find(clientEncodingName);
    }

    public long SessionId { get; }

    public string InstanceName { get; }

    public EndPoint? ClientAddress { get; }

    public string User => startupParameters.GetValueOrDefault("user") ?? string.Empty;

    public string Database => startupParameters.GetValueOrDefault("database") ?? User;

    public string? ApplicationName => startupParameters.GetValueOrDefault("application_name");

    public IReadOnlyDictionary<string, string> StartupParameters => startupParameters;

    /// <summary>The encoding of client_encoding, or UTF-8 when PgProxy has no decoder for it (see <see cref="HasDecodableEncoding"/>).</summary>
    public Encoding ClientEncoding => CurrentEncoding ?? PostgresEncodings.Utf8;

    /// <summary>False when client_encoding names an encoding PgProxy cannot decode: query text then passes untouched.</summary>
    public bool HasDecodableEncoding => CurrentEncoding is not null;

    /// <summary>What the server last reported (the pumps keep it in the server state), else what the start-up asked for.</summary>
    public string ClientEncodingName => state.ClientEncodingName ?? clientEncodingName;

    private Encoding? CurrentEncoding => state.ClientEncodingName is null ? clientEncoding : state.ClientEncoding;

    public Abstractions.TransactionStatus TransactionStatus => (Abstractions.TransactionStatus)state.TransactionStatus;

    public IDictionary<string, object?> State { get; } = new Dictionary<string, object?>();

    /// <summary>The intercept log as the engine writes it (its own messages redact their SQL).</summary>
    public ILogger Logger { get; }

    /// <summary>The intercept log as plugins get it: lines that say password are redacted. Made on first use.</summary>
    ILogger ISessionContext.Logger => pluginLogger ??= new RedactingLogger(Logger);

    /// <summary>The frontend pump's output, once relaying: metadata queries go out through it, in order with the client's messages.</summary>
    internal Relay.ForwardingPump.PumpOutput? Upstream { get; set; }

    internal ServerResponseHandler? Responses { get; set; }

    /// <summary>Where failures, timeouts, rewrites and refusals of interceptors are counted.</summary>
    internal Diagnostics.ProxyMetrics? Metrics { get; init; }

    /// <summary>The interceptor being called now; metadata queries are allowed only then.</summary>
    internal string? CurrentInterceptor { get; set; }

    /// <summary>The session's own token, for writes that must not be cut short by an interceptor's timeout.</summary>
    internal CancellationToken SessionToken { get; set; }

    /// <summary>Replaces the start-up parameters with what the start-up interceptors left.</summary>
    internal void SetStartupParameters(IEnumerable<KeyValuePair<string, string>> parameters)
    {
        startupParameters.Clear();
        foreach (KeyValuePair<string, string> parameter in parameters)
        {
            startupParameters[parameter.Key] = parameter.Value;
        }

        clientEncodingName = startupParameters.GetValueOrDefault("client_encoding") ?? "UTF8";
        clientEncoding = PostgresEncodings.Find(clientEncodingName);
    }

    public async Task<UpstreamQueryResult> QueryUpstreamAsync(string sql, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sql);
        if (CurrentInterceptor is not { } interceptor || Upstream is null || Responses is null)
        {
            throw new InvalidOperationException("a metadata query can run only while a query interceptor is being called");
        }

        if (state.ExtendedBatchOpen)
        {
            throw new UpstreamQueryException("the client has an extended-protocol batch in flight (messages sent without their Sync): no query can be slipped in before it ends");
        }

        // Between the client's requests only: every Sync and Query forwarded so far must have its ReadyForQuery. What
        // this batch gathered so far goes out first, or the server would never answer it.
        await Upstream.FlushAsync(SessionToken).ConfigureAwait(false);
        await state.WhenNoOutstandingRequestsAsync(cancellationToken).ConfigureAwait(false);
        if (state.TransactionStatus == Protocol.TransactionStatus.Failed)
        {
            throw new UpstreamQueryException("25P02", "current transaction is aborted: the metadata query cannot run until the client ends it");
        }

        Task<UpstreamQueryResult> result = Responses.ExpectMetadataResult(state.NextRequestNumber);
        var message = new ArrayBufferWriter<byte>(sql.Length + 16);
        QueryMessages.WriteQuery(message, ClientEncoding, sql);
        await Upstream.WriteAsync(new ReadOnlySequence<byte>(message.WrittenMemory), SessionToken).ConfigureAwait(false);
        await Upstream.FlushAsync(SessionToken).ConfigureAwait(false);
        UpstreamQueryResult rows = await result.WaitAsync(cancellationToken).ConfigureAwait(false);
        InterceptLog.MetadataQuery(Logger, SessionId, interceptor, sql, rows.Rows.Count);
        return rows;
    }
}
