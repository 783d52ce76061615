using Microsoft.Extensions.Time.Testing;
using PgProxy.Core.Configuration;
using PgProxy.Core.Pooling;

namespace PgProxy.Core.Tests.Pooling;

/// <summary>The pool's state machine: its limits, its queue, its timeouts and the ages of its connections.</summary>
public sealed class ServerPoolTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private static readonly PoolKey Key = new("proxy", "app", "shop");

    private readonly FakeTimeProvider time = new();
    private readonly Connections connections = new();

    [Fact]
    public async Task A_connection_given_back_is_reused_and_none_beyond_size_is_opened()
    {
        await using var pool = Pool(new PoolConfig { Size = 2 });

        Connection first = await pool.AcquireAsync(default);
        Connection second = await pool.AcquireAsync(default);
        Task<Connection> third = pool.AcquireAsync(default);

        Assert.False(third.IsCompleted);
        Assert.Equal(2, connections.Opened);
        Assert.Equal(new PoolCounts(2, 0, 1, TimeSpan.Zero, 2, 0), pool.Counts);
        await pool.ReturnAsync(first, reusable: true);
        Assert.Same(first, await third.WaitAsync(Deadline));
        await pool.ReturnAsync(second, reusable: true);
        Assert.Equal((1, 1, 0), (pool.Counts.Active, pool.Counts.Idle, pool.Counts.Waiting));
        Assert.Equal((0, 1), (first.ParkedTimes, second.ParkedTimes)); // handed on at once, or parked idle
    }

    [Fact]
    public async Task Clients_waiting_are_served_first_come_first_served()
    {
        await using var pool = Pool(new PoolConfig { Size = 1 });
        Connection only = await pool.AcquireAsync(default);
        Task<Connection>[] waiting = [.. Enumerable.Range(0, 5).Select(_ => pool.AcquireAsync(default))];

        var served = new List<int>();
        for (int turn = 0; turn < waiting.Length; turn++)
        {
            await pool.ReturnAsync(only, reusable: true);
            Task<Connection> first = await Task.WhenAny(waiting).WaitAsync(Deadline);
            int next = Array.IndexOf(waiting, first);
            only = await first;
            served.Add(next);
            waiting[next] = new TaskCompletionSource<Connection>().Task; // served: never completes again
        }

        Assert.Equal([0, 1, 2, 3, 4], served);
        Assert.Equal(1, connections.Opened);
    }

    [Fact]
    public async Task A_client_waiting_past_queue_timeout_gets_an_error_naming_the_pool_and_leaves_the_queue()
    {
        await using var pool = Pool(new PoolConfig { Size = 1, QueueTimeout = TimeSpan.FromSeconds(5) });
        Connection only = await pool.AcquireAsync(default);
        Task<Connection> waiting = pool.AcquireAsync(default);

        time.Advance(TimeSpan.FromSeconds(4));
        Assert.False(waiting.IsCompleted);
        Assert.Equal(TimeSpan.FromSeconds(4), pool.Counts.LongestWait);
        time.Advance(TimeSpan.FromSeconds(1));

        PoolTimeoutException error = await Assert.ThrowsAsync<PoolTimeoutException>(() => waiting.WaitAsync(Deadline));
        Assert.Equal("no server connection came free within queue-timeout (5 s) in pool \"proxy\" for user \"app\", database \"shop\": all 1 are in use", error.Message);
        Assert.Equal(0, pool.Counts.Waiting);

        // The connection given back afterwards goes idle: it was not handed to the client that gave up.
        await pool.ReturnAsync(only, reusable: true);
        Assert.Equal((0, 1), (pool.Counts.Active, pool.Counts.Idle));
    }

    [Fact]
    public async Task A_client_that_goes_away_while_waiting_leaves_the_queue()
    {
        await using var pool = Pool(new PoolConfig { Size = 1 });
        Connection only = await pool.AcquireAsync(default);
        using var gone = new CancellationTokenSource();
        Task<Connection> leaving = pool.AcquireAsync(gone.Token);
        Task<Connection> staying = pool.AcquireAsync(default);

        await gone.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving.WaitAsync(Deadline));
        await pool.ReturnAsync(only, reusable: true);

        Assert.Same(only, await staying.WaitAsync(Deadline));
    }

    [Fact]
    public async Task A_broken_connection_is_closed_and_its_place_goes_to_a_new_one_for_the_client_waiting()
    {
        await using var pool = Pool(new PoolConfig { Size = 1 });
        Connection broken = await pool.AcquireAsync(default);
        Task<Connection> waiting = pool.AcquireAsync(default);

        await pool.ReturnAsync(broken, reusable: false);
        Connection replacement = await waiting.WaitAsync(Deadline);

        Assert.NotSame(broken, replacement);
        Assert.True(broken.Closed);
        Assert.Equal((2, 1), (connections.Opened, pool.Counts.Closed));
    }

    [Fact]
    public async Task An_idle_connection_the_server_closed_is_not_lent()
    {
        await using var pool = Pool(new PoolConfig { Size = 2 });
        Connection first = await pool.AcquireAsync(default);
        await pool.ReturnAsync(first, reusable: true);

        first.ServerClosed = true;
        Connection next = await pool.AcquireAsync(default);

        Assert.NotSame(first, next);
        Assert.True(first.Closed);
    }

    [Fact]
    public async Task A_failed_open_reaches_only_its_client_and_frees_its_place()
    {
        await using var pool = Pool(new PoolConfig { Size = 1 });
        connections.FailNext = true;

        await Assert.ThrowsAsync<IOException>(() => pool.AcquireAsync(default));
        Connection next = await pool.AcquireAsync(default);

        Assert.False(next.Closed);
        Assert.Equal((1, 0), (pool.Counts.Active, pool.Counts.Idle));
    }

    [Fact]
    public async Task Idle_connections_beyond_min_idle_close_after_server_idle_timeout()
    {
        await using var pool = Pool(new PoolConfig { Size = 3, MinIdle = 1, ServerIdleTimeout = TimeSpan.FromMinutes(10) });
        Connection[] lent = [await pool.AcquireAsync(default), await pool.AcquireAsync(default), await pool.AcquireAsync(default)];
        foreach (Connection connection in lent)
        {
            await pool.ReturnAsync(connection, reusable: true);
        }

        time.Advance(TimeSpan.FromMinutes(9));
        await pool.MaintainAsync(default);
        Assert.Equal(3, pool.Counts.Idle);
        time.Advance(TimeSpan.FromMinutes(1));
        await pool.MaintainAsync(default);

        Assert.Equal(1, pool.Counts.Idle);
        Assert.Equal(2, lent.Count(connection => connection.Closed));
    }

    [Fact]
    public async Task Min_idle_connections_are_opened_ahead_of_clients()
    {
        await using var pool = Pool(new PoolConfig { Size = 5, MinIdle = 2 });

        await pool.MaintainAsync(default);

        Assert.Equal((0, 2, 2), (pool.Counts.Active, pool.Counts.Idle, connections.Opened));
    }

    [Fact]
    public async Task A_connection_past_server_lifetime_is_closed_when_given_back_not_reused()
    {
        await using var pool = Pool(new PoolConfig { Size = 1, ServerLifetime = TimeSpan.FromHours(1) });
        Connection old = await pool.AcquireAsync(default);

        time.Advance(TimeSpan.FromHours(1));
        await pool.ReturnAsync(old, reusable: true);
        Connection next = await pool.AcquireAsync(default);

        Assert.True(old.Closed);
        Assert.NotSame(old, next);
    }

    [Fact]
    public async Task Closing_the_pool_fails_the_clients_waiting_and_closes_what_is_given_back_later()
    {
        var pool = Pool(new PoolConfig { Size = 1 });
        Connection lent = await pool.AcquireAsync(default);
        Task<Connection> waiting = pool.AcquireAsync(default);

        await pool.DisposeAsync();
        await Assert.ThrowsAsync<PoolClosedException>(() => waiting.WaitAsync(Deadline));
        await pool.ReturnAsync(lent, reusable: true);

        Assert.True(lent.Closed);
        Assert.Equal(0, pool.Counts.Idle);
    }

    [Fact]
    public async Task Under_contention_every_client_is_served_and_no_more_than_size_are_ever_open()
    {
        await using var pool = Pool(new PoolConfig { Size = 4 }, TimeProvider.System);
        int inUse = 0;
        int mostInUse = 0;

        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            for (int round = 0; round < 50; round++)
            {
                Connection connection = await pool.AcquireAsync(default);
                int now = Interlocked.Increment(ref inUse);
                InterlockedMax(ref mostInUse, now);
                await Task.Yield();
                Interlocked.Decrement(ref inUse);
                await pool.ReturnAsync(connection, reusable: true);
            }
        }))).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(mostInUse <= 4, $"{mostInUse} connections were lent at once");
        Assert.True(connections.Opened <= 4, $"{connections.Opened} connections were opened");
        Assert.Equal((0, connections.Opened, 0), (pool.Counts.Active, pool.Counts.Idle, pool.Counts.Waiting));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen = Volatile.Read(ref target);
        while (value > seen && Interlocked.CompareExchange(ref target, value, seen) is var previous && previous != seen)
        {
            seen = previous;
        }
    }

    private ServerPool<Connection> Pool(PoolConfig config, TimeProvider? clock = null) =>
        new(Key, config with { Mode = PoolMode.Transaction }, connections, clock ?? time);

    internal sealed class Connection
    {
        public bool Closed { get; set; }

        public bool ServerClosed { get; set; }

        public int ParkedTimes { get; set; }
    }

    [Fact]
    public async Task Pause_lends_nothing_closes_what_comes_back_and_completes_when_none_is_open()
    {
        await using var pool = Pool(new PoolConfig { Size = 2 });
        Connection lent = await pool.AcquireAsync(default);
        Connection idle = await pool.AcquireAsync(default);
        await pool.ReturnAsync(idle, reusable: true);

        Task pausing = pool.PauseAsync(default);
        Task<Connection> waiting = pool.AcquireAsync(default);

        Assert.True(idle.Closed);
        Assert.False(pausing.IsCompleted);
        await pool.ReturnAsync(lent, reusable: true);
        await pausing.WaitAsync(Deadline);
        Assert.True(lent.Closed);
        Assert.False(waiting.IsCompleted);
        Assert.Equal((0, 0, 1), (pool.Counts.Active, pool.Counts.Idle, pool.Counts.Waiting));

        await pool.ResumeAsync();
        Connection fresh = await waiting.WaitAsync(Deadline);
        Assert.NotSame(lent, fresh);
        Assert.Equal(3, connections.Opened);
    }

    [Fact]
    public async Task Reconnect_replaces_idle_connections_now_and_lent_ones_as_they_come_back()
    {
        await using var pool = Pool(new PoolConfig { Size = 2 });
        Connection lent = await pool.AcquireAsync(default);
        Connection idle = await pool.AcquireAsync(default);
        await pool.ReturnAsync(idle, reusable: true);

        await pool.ReconnectAsync();
        Assert.True(idle.Closed);
        await pool.ReturnAsync(lent, reusable: true);
        Assert.True(lent.Closed);

        Connection next = await pool.AcquireAsync(default);
        Assert.False(next.Closed);
        Assert.Equal(3, connections.Opened);
        await pool.ReturnAsync(next, reusable: true);
        Assert.Same(next, await pool.AcquireAsync(default));
    }

    private sealed class Connections : IServerConnectionFactory<Connection>
    {
        private int opened;

        public int Opened => Volatile.Read(ref opened);

        public bool FailNext { get; set; }

        public Task<Connection> OpenAsync(CancellationToken cancellationToken)
        {
            if (FailNext)
            {
                FailNext = false;
                return Task.FromException<Connection>(new IOException("connection refused"));
            }

            Interlocked.Increment(ref opened);
            return Task.FromResult(new Connection());
        }

        public bool IsUsable(Connection connection) => !connection.ServerClosed;

        public void Parked(Connection connection) => connection.ParkedTimes++;

        public ValueTask CloseAsync(Connection connection)
        {
            connection.Closed = true;
            return ValueTask.CompletedTask;
        }
    }
}
