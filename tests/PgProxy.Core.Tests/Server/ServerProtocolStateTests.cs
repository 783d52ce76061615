using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PgProxy.Core.Server;
using PgProxy.Protocol;

namespace PgProxy.Core.Tests.Server;

/// <summary>
/// The relay's view of one server conversation, driven as the pumps drive it: requests forwarded, ReadyForQuery,
/// BackendKeyData and ParameterStatus bodies as bytes.
/// </summary>
public sealed class ServerProtocolStateTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    private readonly ServerProtocolState state = new();

    [Fact]
    public void Before_login_the_start_up_is_the_one_outstanding_request_and_the_status_is_unknown()
    {
        Assert.Equal(1, state.OutstandingRequests);
        Assert.Equal(TransactionStatus.Unknown, state.TransactionStatus);
        Assert.False(state.IsIdle);
        Assert.Null(state.BackendKey);
        Assert.Empty(state.Parameters);
        Assert.False(state.ExtendedBatchOpen);
    }

    [Fact]
    public void The_login_ready_for_query_answers_the_start_up()
    {
        state.OnReadyForQuery((byte)'I');

        Assert.Equal(0, state.OutstandingRequests);
        Assert.Equal(TransactionStatus.Idle, state.TransactionStatus);
        Assert.True(state.IsIdle);
    }

    [Fact]
    public void An_error_with_no_sync_after_it_leaves_the_server_waiting_for_the_sync_from_then_on()
    {
        state.OnReadyForQuery((byte)'I');
        Assert.Equal(0, state.WaitingForSyncSince);
        long before = Environment.TickCount64;

        state.OnErrorResponse();

        Assert.InRange(state.WaitingForSyncSince, before, Environment.TickCount64);
    }

    [Fact]
    public void A_sync_forwarded_after_the_error_ends_the_wait_before_its_ready_for_query_comes()
    {
        state.OnReadyForQuery((byte)'I');
        state.OnErrorResponse();

        state.OnRequestForwarded();
        state.OnSyncForwarded();

        Assert.Equal(0, state.WaitingForSyncSince);
    }

    [Fact]
    public void A_query_forwarded_after_the_error_does_not_end_the_wait_since_the_server_skips_it()
    {
        state.OnReadyForQuery((byte)'I');
        state.OnErrorResponse();

        state.OnRequestForwarded();

        Assert.NotEqual(0, state.WaitingForSyncSince);
    }

    [Fact]
    public void A_ready_for_query_after_the_error_ends_the_wait()
    {
        // A failed simple Query, or a batch whose Sync the server already had: no Sync comes after the error.
        state.OnReadyForQuery((byte)'I');
        state.OnRequestForwarded();
        state.OnErrorResponse();

        state.OnReadyForQuery((byte)'I');

        Assert.Equal(0, state.WaitingForSyncSince);
    }

    [Fact]
    public void An_error_answered_to_a_sync_already_forwarded_waits_only_until_its_ready_for_query()
    {
        state.OnReadyForQuery((byte)'I');
        state.OnRequestForwarded();
        state.OnSyncForwarded();

        state.OnErrorResponse();
        long during = state.WaitingForSyncSince;
        state.OnReadyForQuery((byte)'I');

        Assert.NotEqual(0, during);
        Assert.Equal(0, state.WaitingForSyncSince);
    }

    [Theory]
    [InlineData('I', TransactionStatus.Idle)]
    [InlineData('T', TransactionStatus.InTransaction)]
    [InlineData('E', TransactionStatus.Failed)]
    public void The_transaction_status_is_the_one_of_the_last_ready_for_query(char status, TransactionStatus expected)
    {
        state.OnReadyForQuery((byte)'T');
        state.OnRequestForwarded();
        state.OnReadyForQuery((byte)status);

        Assert.Equal(expected, state.TransactionStatus);
        Assert.Equal(expected == TransactionStatus.Idle, state.IsIdle);
    }

    [Fact]
    public void Pipelined_requests_stay_outstanding_until_each_has_its_ready_for_query()
    {
        Login();

        // A client that sends three Syncs (or Queries) before reading anything.
        state.OnRequestForwarded();
        state.OnRequestForwarded();
        state.OnRequestForwarded();
        Assert.Equal(3, state.OutstandingRequests);

        state.OnReadyForQuery((byte)'T');
        Assert.Equal(2, state.OutstandingRequests);
        Assert.False(state.IsIdle);
        state.OnReadyForQuery((byte)'I');
        Assert.Equal(1, state.OutstandingRequests);

        // Idle status, but a request still in flight: not a safe point.
        Assert.Equal(TransactionStatus.Idle, state.TransactionStatus);
        Assert.False(state.IsIdle);
        state.OnReadyForQuery((byte)'I');
        Assert.Equal(0, state.OutstandingRequests);
        Assert.True(state.IsIdle);
    }

    [Fact]
    public void An_error_answered_by_its_sync_leaves_nothing_outstanding_and_a_failed_transaction()
    {
        Login();

        // Parse, Bind, Execute (not counted), then Sync; the server errors at Execute and answers the Sync with 'E'.
        state.ExtendedBatchOpen = true;
        state.OnRequestForwarded();
        state.ExtendedBatchOpen = false;
        Assert.Equal(1, state.OutstandingRequests);
        state.OnReadyForQuery((byte)'E');

        Assert.Equal(0, state.OutstandingRequests);
        Assert.Equal(TransactionStatus.Failed, state.TransactionStatus);
        Assert.False(state.IsIdle);
    }

    [Fact]
    public void Request_numbers_count_from_two_because_the_start_up_is_the_first()
    {
        Assert.Equal(2, state.NextRequestNumber);
        Assert.Equal(1, state.CurrentResponseGroup);

        state.OnRequestForwarded();
        state.OnRequestForwarded();
        Assert.Equal(4, state.NextRequestNumber);

        // The login's ReadyForQuery closes group 1; the backend then receives the answer to request 2.
        state.OnReadyForQuery((byte)'I');
        Assert.Equal(2, state.CurrentResponseGroup);
        state.OnReadyForQuery((byte)'I');
        Assert.Equal(3, state.CurrentResponseGroup);
        state.OnReadyForQuery((byte)'I');
        Assert.Equal(4, state.CurrentResponseGroup);
        Assert.Equal(state.NextRequestNumber, state.CurrentResponseGroup);
    }

    [Fact]
    public void A_request_numbered_before_forwarding_is_answered_in_the_response_group_of_that_number()
    {
        Login();
        state.OnRequestForwarded();

        long number = state.NextRequestNumber;
        state.OnRequestForwarded();

        // The earlier request's answer comes first.
        Assert.NotEqual(number, state.CurrentResponseGroup);
        state.OnReadyForQuery((byte)'I');
        Assert.Equal(number, state.CurrentResponseGroup);
    }

    [Fact]
    public async Task Waiting_for_no_outstanding_requests_completes_at_once_when_everything_is_answered()
    {
        Login();

        Task waiting = state.WhenNoOutstandingRequestsAsync(CancellationToken.None);

        Assert.True(waiting.IsCompletedSuccessfully);
        await waiting;
    }

    [Fact]
    public async Task Waiting_for_no_outstanding_requests_completes_only_with_the_last_ready_for_query()
    {
        Login();
        state.OnRequestForwarded();
        state.OnRequestForwarded();

        Task waiting = state.WhenNoOutstandingRequestsAsync(CancellationToken.None);
        Assert.False(waiting.IsCompleted);

        state.OnReadyForQuery((byte)'T');
        Assert.False(waiting.IsCompleted);

        state.OnReadyForQuery((byte)'I');
        await waiting.WaitAsync(Deadline);
    }

    [Fact]
    public async Task Waiting_during_login_completes_with_the_login_ready_for_query()
    {
        Task waiting = state.WhenNoOutstandingRequestsAsync(CancellationToken.None);
        Assert.False(waiting.IsCompleted);

        Login();

        await waiting.WaitAsync(Deadline);
    }

    [Fact]
    public async Task Waiting_for_no_outstanding_requests_ends_when_its_token_is_cancelled()
    {
        Login();
        state.OnRequestForwarded();
        using var cancellation = new CancellationTokenSource();

        Task waiting = state.WhenNoOutstandingRequestsAsync(cancellation.Token);
        Assert.False(waiting.IsCompleted);
        await cancellation.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Deadline));
        Assert.Equal(1, state.OutstandingRequests);
    }

    [Fact]
    public async Task A_token_cancelled_before_waiting_ends_the_wait_at_once()
    {
        Login();
        state.OnRequestForwarded();

        Task waiting = state.WhenNoOutstandingRequestsAsync(new CancellationToken(canceled: true));

        Assert.True(waiting.IsCanceled);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
    }

    [Fact]
    public void A_shutdown_requested_while_idle_may_end_the_session_now()
    {
        Login();
        Assert.False(state.ShouldEndAfterBatch());

        Assert.True(state.RequestShutdown());

        Assert.True(state.ShutdownRequested);
        Assert.True(state.ShouldEndAfterBatch());
    }

    [Fact]
    public void A_shutdown_requested_in_a_transaction_waits_for_the_transaction_to_end()
    {
        Login();
        state.OnRequestForwarded();
        state.OnReadyForQuery((byte)'T');

        Assert.False(state.RequestShutdown());
        Assert.True(state.ShutdownRequested);
        Assert.False(state.ShouldEndAfterBatch());

        state.OnRequestForwarded();
        Assert.False(state.ShouldEndAfterBatch());
        state.OnReadyForQuery((byte)'I');
        Assert.True(state.ShouldEndAfterBatch());
    }

    [Fact]
    public void A_shutdown_requested_with_a_request_in_flight_waits_for_its_answer()
    {
        Login();
        state.OnRequestForwarded();

        Assert.False(state.RequestShutdown());
        Assert.False(state.ShouldEndAfterBatch());

        state.OnReadyForQuery((byte)'I');
        Assert.True(state.ShouldEndAfterBatch());
    }

    [Fact]
    public void Without_a_shutdown_request_an_idle_session_goes_on()
    {
        Login();

        Assert.True(state.IsIdle);
        Assert.False(state.ShutdownRequested);
        Assert.False(state.ShouldEndAfterBatch());
    }

    [Fact]
    public void A_four_byte_key_of_protocol_3_0_is_recorded_with_the_process_id()
    {
        state.OnBackendKeyData(Sequence(KeyData(12345, [1, 2, 3, 4])));

        Assert.Equal(12345, state.BackendKey!.Value.ProcessId);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, state.BackendKey!.Value.SecretKey);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(32)]
    [InlineData(256)]
    public void A_longer_key_of_protocol_3_2_is_recorded_whole(int length)
    {
        byte[] key = [.. Enumerable.Range(0, length).Select(i => (byte)(i * 7))];

        state.OnBackendKeyData(Sequence(KeyData(-2, key)));

        Assert.Equal(-2, state.BackendKey!.Value.ProcessId);
        Assert.Equal(key, state.BackendKey!.Value.SecretKey);
    }

    [Fact]
    public void A_key_split_across_buffer_segments_is_recorded_whole()
    {
        byte[] body = KeyData(777, [9, 8, 7, 6, 5, 4, 3, 2]);

        state.OnBackendKeyData(Sequence(body[..3], body[3..6], body[6..]));

        Assert.Equal(777, state.BackendKey!.Value.ProcessId);
        Assert.Equal(new byte[] { 9, 8, 7, 6, 5, 4, 3, 2 }, state.BackendKey!.Value.SecretKey);
    }

    [Fact]
    public void The_key_is_copied_out_of_the_receive_buffer()
    {
        byte[] body = KeyData(1, [1, 2, 3, 4]);

        state.OnBackendKeyData(Sequence(body));
        body.AsSpan().Clear();

        Assert.Equal(1, state.BackendKey!.Value.ProcessId);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, state.BackendKey!.Value.SecretKey);
    }

    public static TheoryData<byte[]> MalformedKeyData() =>
    [
        [],
        [0, 0, 1],
        [0, 0, 0, 1],
        KeyData(1, [1, 2, 3]),
        KeyData(1, new byte[257]),
    ];

    [Theory]
    [MemberData(nameof(MalformedKeyData))]
    public void A_malformed_key_data_is_ignored_and_keeps_the_key_known_before(byte[] body)
    {
        var fresh = new ServerProtocolState();
        fresh.OnBackendKeyData(Sequence(body));
        Assert.Null(fresh.BackendKey);

        state.OnBackendKeyData(Sequence(KeyData(42, [4, 3, 2, 1])));
        state.OnBackendKeyData(Sequence(body));

        Assert.Equal(42, state.BackendKey!.Value.ProcessId);
        Assert.Equal(new byte[] { 4, 3, 2, 1 }, state.BackendKey!.Value.SecretKey);
    }

    [Fact]
    public void The_latest_parameter_status_of_a_name_wins()
    {
        state.OnParameterStatus(Sequence(ParameterStatus("client_encoding", "UTF8")));
        state.OnParameterStatus(Sequence(ParameterStatus("server_version", "17.2")));
        state.OnParameterStatus(Sequence(ParameterStatus("client_encoding", "LATIN1")));

        Assert.Equal(2, state.Parameters.Count);
        Assert.Equal("LATIN1", state.Parameters["client_encoding"]);
        Assert.Equal("17.2", state.Parameters["server_version"]);
    }

    [Fact]
    public void A_parameter_status_keeps_an_empty_value_and_non_ascii_text()
    {
        state.OnParameterStatus(Sequence(ParameterStatus("application_name", "")));
        state.OnParameterStatus(Sequence(ParameterStatus("TimeZone", "Europe/Zürich")));

        Assert.Equal(string.Empty, state.Parameters["application_name"]);
        Assert.Equal("Europe/Zürich", state.Parameters["TimeZone"]);
    }

    [Fact]
    public void A_parameter_status_split_across_buffer_segments_is_read_whole()
    {
        byte[] body = ParameterStatus("DateStyle", "ISO, MDY");

        state.OnParameterStatus(Sequence(body[..4], body[4..12], body[12..]));

        Assert.Equal("ISO, MDY", state.Parameters["DateStyle"]);
    }

    [Fact]
    public void The_parameters_are_a_snapshot_that_later_reports_do_not_change()
    {
        state.OnParameterStatus(Sequence(ParameterStatus("TimeZone", "UTC")));

        IReadOnlyDictionary<string, string> before = state.Parameters;
        state.OnParameterStatus(Sequence(ParameterStatus("TimeZone", "Asia/Tokyo")));
        state.OnParameterStatus(Sequence(ParameterStatus("IntervalStyle", "postgres")));

        Assert.Equal("UTC", before["TimeZone"]);
        Assert.Single(before);
        Assert.Equal("Asia/Tokyo", state.Parameters["TimeZone"]);
    }

    public static TheoryData<byte[]> MalformedParameterStatus() =>
    [
        [],
        "TimeZone"u8.ToArray(),
        "TimeZone\0"u8.ToArray(),
        "TimeZone\0Asia/Tokyo"u8.ToArray(),
        "TimeZone\0Asia/Tokyo\0extra"u8.ToArray(),
        "TimeZone\0Asia/Tokyo\0\0"u8.ToArray(),
    ];

    [Theory]
    [MemberData(nameof(MalformedParameterStatus))]
    public void A_malformed_parameter_status_is_ignored_and_keeps_the_value_known_before(byte[] body)
    {
        state.OnParameterStatus(Sequence(ParameterStatus("TimeZone", "UTC")));

        state.OnParameterStatus(Sequence(body));

        Assert.Single(state.Parameters);
        Assert.Equal("UTC", state.Parameters["TimeZone"]);
    }

    private void Login() => state.OnReadyForQuery((byte)'I');

    private static byte[] KeyData(int processId, byte[] key)
    {
        byte[] body = new byte[4 + key.Length];
        BinaryPrimitives.WriteInt32BigEndian(body, processId);
        key.CopyTo(body, 4);
        return body;
    }

    private static byte[] ParameterStatus(string name, string value) => Encoding.UTF8.GetBytes(name + "\0" + value + "\0");

    /// <summary>A body as the pumps pass it: a sequence over one or more buffer segments.</summary>
    private static ReadOnlySequence<byte> Sequence(params byte[][] pieces)
    {
        if (pieces.Length == 1)
        {
            return new ReadOnlySequence<byte>(pieces[0]);
        }

        var first = new Segment(pieces[0], 0);
        Segment last = first;
        foreach (byte[] piece in pieces.Skip(1))
        {
            last = last.Append(piece);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] bytes, long runningIndex)
        {
            Memory = bytes;
            RunningIndex = runningIndex;
        }

        public Segment Append(byte[] bytes)
        {
            var next = new Segment(bytes, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
