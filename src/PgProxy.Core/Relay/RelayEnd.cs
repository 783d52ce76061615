using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Relay;

/// <summary>What the relay's two pumps saw when it ended, as the session hands it to <see cref="RelayEnd.Of"/>.</summary>
/// <param name="Frontend">Why the client-to-server pump stopped.</param>
/// <param name="Backend">Why the server-to-client pump stopped.</param>
/// <param name="ClientOffendingLength">The length the client announced, for an invalid or oversized message.</param>
/// <param name="ServerOffendingLength">The length the server announced, for an invalid message.</param>
/// <param name="NothingFromServer">Neither the login nor the backend pump had passed a byte of the server's to the client.</param>
/// <param name="ShuttingDown">PgProxy had asked the session to end.</param>
internal readonly record struct RelayStops(
    PumpStop Frontend,
    PumpStop Backend,
    long ClientOffendingLength,
    long ServerOffendingLength,
    bool NothingFromServer,
    bool ShuttingDown);

/// <summary>How a relay ended: the reason for the close log line, and the error the client is told, if any.</summary>
internal readonly record struct RelayEnd(string Reason, ProtocolError? ToClient)
{
    /// <summary>The error PostgreSQL sends when an administrator ends a session.</summary>
    public static ProtocolError ShuttingDown { get; } = new(SqlStates.AdminShutdown, "terminating connection due to administrator command");

    /// <summary>
    /// Names the end of a relay and what the client must hear, in order of precedence: the client's protocol violations,
    /// the server's, the client leaving, a shutdown, a server that went away before answering the start-up (which would
    /// otherwise be a silent drop), and a server that closed.
    /// </summary>
    public static RelayEnd Of(in RelayStops stops, long maxMessageSize, string upstreamName)
    {
        if (stops.Frontend == PumpStop.MessageTooLarge)
        {
            return new(
                $"client announced a message of {stops.ClientOffendingLength} bytes, above max-message-size",
                new ProtocolError(SqlStates.ProtocolViolation, $"invalid message length: {stops.ClientOffendingLength} bytes exceeds the limit of {maxMessageSize}"));
        }

        if (stops.Frontend == PumpStop.InvalidMessage)
        {
            return new(
                $"client sent an invalid message length {stops.ClientOffendingLength}",
                new ProtocolError(SqlStates.ProtocolViolation, $"invalid message length {stops.ClientOffendingLength}"));
        }

        if (stops.Backend == PumpStop.InvalidMessage)
        {
            return new(
                $"upstream sent an invalid message length {stops.ServerOffendingLength}",
                new ProtocolError(SqlStates.ProtocolViolation, $"upstream \"{upstreamName}\" sent an invalid message"));
        }

        if (stops.Frontend == PumpStop.Terminated)
        {
            return new("client terminated", null);
        }

        if (stops.Frontend is PumpStop.SourceClosed or PumpStop.SourceFailed || stops.Backend == PumpStop.DestinationFailed)
        {
            return new("client closed", null);
        }

        if (stops.ShuttingDown && stops.Backend is PumpStop.IdleShutdown or PumpStop.Cancelled)
        {
            return new("proxy shutting down", ShuttingDown);
        }

        if (stops.NothingFromServer)
        {
            return new(
                "upstream closed before answering the start-up",
                new ProtocolError(SqlStates.SqlClientUnableToEstablishSqlConnection, $"upstream \"{upstreamName}\" closed the connection before answering the start-up"));
        }

        return new("upstream closed", null);
    }
}
