using PgProxy.Core.Relay;

namespace PgProxy.Core.Tests.Relay;

/// <summary>How a relay's end is named and what the client is told, for each way the two pumps can stop.</summary>
public sealed class RelayEndTests
{
    private static RelayEnd Of(PumpStop frontend, PumpStop backend, bool nothingFromServer = false, bool shuttingDown = false) =>
        RelayEnd.Of(new RelayStops(frontend, backend, 2_000_000, 3, nothingFromServer, shuttingDown), maxMessageSize: 1_048_576, upstreamName: "postgresql");

    [Fact]
    public void An_oversized_client_message_is_a_protocol_violation_naming_the_limit()
    {
        RelayEnd end = Of(PumpStop.MessageTooLarge, PumpStop.Cancelled);

        Assert.Equal("08P01", end.ToClient!.SqlState);
        Assert.Equal("invalid message length: 2000000 bytes exceeds the limit of 1048576", end.ToClient.Message);
        Assert.Contains("above max-message-size", end.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_client_length_below_four_is_a_protocol_violation_even_if_the_server_also_failed()
    {
        RelayEnd end = Of(PumpStop.InvalidMessage, PumpStop.InvalidMessage);

        Assert.Equal("invalid message length 2000000", end.ToClient!.Message);
    }

    [Fact]
    public void A_server_sending_an_invalid_length_is_named_to_the_client()
    {
        RelayEnd end = Of(PumpStop.Cancelled, PumpStop.InvalidMessage);

        Assert.Equal("08P01", end.ToClient!.SqlState);
        Assert.Equal("upstream \"postgresql\" sent an invalid message", end.ToClient.Message);
        Assert.Equal("upstream sent an invalid message length 3", end.Reason);
    }

    [Theory]
    [InlineData((int)PumpStop.Terminated, (int)PumpStop.SourceClosed, "client terminated")]
    [InlineData((int)PumpStop.SourceClosed, (int)PumpStop.Cancelled, "client closed")]
    [InlineData((int)PumpStop.SourceFailed, (int)PumpStop.Cancelled, "client closed")]
    [InlineData((int)PumpStop.Cancelled, (int)PumpStop.DestinationFailed, "client closed")]
    [InlineData((int)PumpStop.Cancelled, (int)PumpStop.SourceClosed, "upstream closed")]
    public void A_client_or_server_that_leaves_is_told_nothing(int frontend, int backend, string reason)
    {
        RelayEnd end = Of((PumpStop)frontend, (PumpStop)backend);

        Assert.Equal(reason, end.Reason);
        Assert.Null(end.ToClient);
    }

    [Theory]
    [InlineData((int)PumpStop.IdleShutdown)]
    [InlineData((int)PumpStop.Cancelled)]
    public void A_shutdown_tells_the_client_as_postgresql_does(int backend)
    {
        RelayEnd end = Of(PumpStop.Cancelled, (PumpStop)backend, shuttingDown: true);

        Assert.Equal("57P01", end.ToClient!.SqlState);
        Assert.Equal("proxy shutting down", end.Reason);
    }

    [Fact]
    public void A_client_that_leaves_during_a_shutdown_is_not_told_about_it()
    {
        Assert.Null(Of(PumpStop.SourceClosed, PumpStop.Cancelled, shuttingDown: true).ToClient);
    }

    [Fact]
    public void A_server_gone_before_answering_the_start_up_is_not_a_silent_drop()
    {
        RelayEnd end = Of(PumpStop.Cancelled, PumpStop.SourceClosed, nothingFromServer: true);

        Assert.Equal("08001", end.ToClient!.SqlState);
        Assert.Equal("upstream \"postgresql\" closed the connection before answering the start-up", end.ToClient.Message);
    }
}
