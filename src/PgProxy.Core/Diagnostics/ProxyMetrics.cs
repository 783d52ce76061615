using System.Diagnostics.Metrics;

namespace PgProxy.Core.Diagnostics;

/// <summary>
/// The engine's instruments (meter "PgProxy"). Recorded per session, never per message, so metrics cost nothing
/// on the forwarding path.
/// </summary>
public sealed class ProxyMetrics : IDisposable
{
    public const string MeterName = "PgProxy";

    private readonly Meter meter;
    private readonly Counter<long> sessionsOpened;
    private readonly UpDownCounter<long> sessionsActive;
    private readonly Histogram<double> sessionDuration;
    private readonly Counter<long> bytes;
    private readonly Counter<long> upstreamConnectFailures;
    private readonly Counter<long> clientErrors;

    public ProxyMetrics(IMeterFactory? meterFactory = null)
    {
        meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        sessionsOpened = meter.CreateCounter<long>("pgproxy.sessions.opened", "{session}", "Client sessions relayed to an upstream.");
        sessionsActive = meter.CreateUpDownCounter<long>("pgproxy.sessions.active", "{session}", "Client sessions open now.");
        sessionDuration = meter.CreateHistogram<double>("pgproxy.session.duration", "s", "How long client sessions lasted.");
        bytes = meter.CreateCounter<long>("pgproxy.bytes", "By", "Bytes relayed, by direction (client_to_server, server_to_client).");
        upstreamConnectFailures = meter.CreateCounter<long>("pgproxy.upstream.connect_failures", "{connection}", "Upstream connections that could not be made.");
        clientErrors = meter.CreateCounter<long>("pgproxy.client.errors", "{error}", "Errors the proxy raised to clients itself, by SQLSTATE.");
    }

    internal void SessionOpened(string instance)
    {
        var tag = new KeyValuePair<string, object?>("instance", instance);
        sessionsOpened.Add(1, tag);
        sessionsActive.Add(1, tag);
    }

    internal void SessionClosed(string instance, double durationSeconds, long bytesFromClient, long bytesToClient)
    {
        var tag = new KeyValuePair<string, object?>("instance", instance);
        sessionsActive.Add(-1, tag);
        sessionDuration.Record(durationSeconds, tag);
        if (bytes.Enabled)
        {
            bytes.Add(bytesFromClient, tag, new KeyValuePair<string, object?>("direction", "client_to_server"));
            bytes.Add(bytesToClient, tag, new KeyValuePair<string, object?>("direction", "server_to_client"));
        }
    }

    internal void UpstreamConnectFailed(string instance) =>
        upstreamConnectFailures.Add(1, new KeyValuePair<string, object?>("instance", instance));

    internal void ClientError(string instance, string sqlState) =>
        clientErrors.Add(1, new KeyValuePair<string, object?>("instance", instance), new KeyValuePair<string, object?>("sqlstate", sqlState));

    public void Dispose() => meter.Dispose();
}
