namespace PgProxy.Core.Relay;

/// <summary>Why a pump stopped forwarding.</summary>
internal enum PumpStop
{
    /// <summary>The source closed its side of the connection.</summary>
    SourceClosed,

    /// <summary>The client sent Terminate, which was forwarded.</summary>
    Terminated,

    /// <summary>The source sent a message with an impossible length.</summary>
    InvalidMessage,

    /// <summary>The client announced a message above the instance's limit.</summary>
    MessageTooLarge,

    /// <summary>Reading from the source failed (reset, aborted).</summary>
    SourceFailed,

    /// <summary>Writing to the destination failed.</summary>
    DestinationFailed,

    /// <summary>The session asked the pump to stop.</summary>
    Cancelled,

    /// <summary>A requested shutdown found the session idle after this batch.</summary>
    IdleShutdown,

    /// <summary>Transaction pooling: the server connection became idle after this batch and may go back to its pool.</summary>
    Unlinked,

    /// <summary>Transaction pooling: no server connection could be had for what the client sent (the client was told why).</summary>
    NoServer,
}
