using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Server;
using PgProxy.Abstractions;
using PgProxy.Core.Interception;
using PgProxy.Core.Sessions;

namespace PgProxy.Core.Tests.Interception;

/// <summary>
/// The one runner behind query, start-up and response interceptors: timeout, cancellation, failure policy and
/// <see cref="RefusedException"/>, the same for each kind; only the default failure policy differs.
/// </summary>
public sealed class InterceptorRunnerTests
{
    private static readonly TimeSpan Long = TimeSpan.FromHours(1);
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(50);

    private readonly ListLogger logger = new();

    public static TheoryData<string> Kinds() => ["query", "connect", "response"];

    public static TheoryData<string, InterceptorFailurePolicy> KindsAndPolicies()
    {
        var data = new TheoryData<string, InterceptorFailurePolicy>();
        foreach (string kind in Kinds())
        {
            data.Add(kind, InterceptorFailurePolicy.PassThrough);
            data.Add(kind, InterceptorFailurePolicy.Refuse);
        }

        return data;
    }

    [Theory]
    [InlineData("query", null)]
    [InlineData("connect", null)]
    [InlineData("response", "XX000")]
    public async Task Without_on_error_or_plugin_failure_queries_and_connects_pass_and_responses_refuse(string kind, string? expected)
    {
        Outcome outcome = await RunAsync(kind, Throws, Long, settingsPolicy: null);

        Assert.Equal(expected, outcome.SqlState);
        Assert.Contains(logger.Lines, line => line.Contains("interceptor test.plugin failed", StringComparison.Ordinal) && line.Contains("plugin bug", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(KindsAndPolicies))]
    public async Task Plugin_failure_applies_to_every_kind(string kind, InterceptorFailurePolicy policy)
    {
        Outcome outcome = await RunAsync(kind, Throws, Long, policy);

        AssertFollows(policy, outcome, "plugin bug");
    }

    [Theory]
    [MemberData(nameof(KindsAndPolicies))]
    public async Task An_entry_on_error_beats_plugin_failure_and_the_kind_default(string kind, InterceptorFailurePolicy onError)
    {
        InterceptorFailurePolicy other = onError == InterceptorFailurePolicy.Refuse ? InterceptorFailurePolicy.PassThrough : InterceptorFailurePolicy.Refuse;

        AssertFollows(onError, await RunAsync(kind, Throws, Long, other, onError), "plugin bug");
        AssertFollows(onError, await RunAsync(kind, Throws, Long, settingsPolicy: null, onError), "plugin bug");
    }

    [Theory]
    [MemberData(nameof(KindsAndPolicies))]
    public async Task RefusedException_thrown_at_once_refuses_with_its_sqlstate_whatever_the_policy(string kind, InterceptorFailurePolicy onError)
    {
        Outcome outcome = await RunAsync(kind, _ => throw new RefusedException("28000", "not you"), Long, settingsPolicy: null, onError);

        Assert.Equal(new Outcome("28000", "not you"), outcome);
        Assert.DoesNotContain(logger.Lines, line => line.Contains("failed", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(KindsAndPolicies))]
    public async Task RefusedException_from_the_task_refuses_with_its_sqlstate_whatever_the_policy(string kind, InterceptorFailurePolicy onError)
    {
        Outcome outcome = await RunAsync(
            kind,
            async _ =>
            {
                await Task.Yield();
                throw new RefusedException("0A000", "later");
            },
            Long,
            settingsPolicy: null,
            onError);

        Assert.Equal(new Outcome("0A000", "later"), outcome);
    }

    [Theory]
    [MemberData(nameof(KindsAndPolicies))]
    public async Task The_entry_timeout_fires_the_plugin_token_and_counts_as_a_failure(string kind, InterceptorFailurePolicy onError)
    {
        var fired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        Outcome outcome = await RunAsync(
            kind,
            async cancellationToken =>
            {
                cancellationToken.Register(() => fired.TrySetResult());
                await Task.Delay(Timeout.Infinite, cancellationToken);
            },
            Long,
            settingsPolicy: null,
            onError,
            timeout: Short);

        await fired.Task.WaitAsync(TimeSpan.FromSeconds(10));
        AssertFollows(onError, outcome, "timed out after 0.05 s");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Plugin_timeout_is_the_default_timeout_and_a_plugin_that_ignores_its_token_is_not_waited_for(string kind)
    {
        CancellationToken seen = default;

        Outcome outcome = await RunAsync(
            kind,
            async cancellationToken =>
            {
                seen = cancellationToken;
                await new TaskCompletionSource().Task; // ignores the token on purpose
            },
            Short,
            InterceptorFailurePolicy.Refuse);

        Assert.True(seen.IsCancellationRequested);
        AssertFollows(InterceptorFailurePolicy.Refuse, outcome, "timed out after 0.05 s");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task After_a_timeout_the_next_call_gets_a_fresh_token_and_its_own_timeout(string kind)
    {
        var session = NewSession();
        var calls = new List<CancellationToken>();
        Func<CancellationToken, ValueTask> body = async cancellationToken =>
        {
            calls.Add(cancellationToken);
            if (calls.Count == 1)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
        };

        Outcome first = await session.RunAsync(kind, body, Short, InterceptorFailurePolicy.Refuse, null, null, default);
        Outcome second = await session.RunAsync(kind, body, Short, InterceptorFailurePolicy.Refuse, null, null, default);

        // Disarmed once the call returned: the second call's token, which a plugin may keep, does not fire at the
        // timeout later (waited on, with a deadline of three timeouts; it would end the wait early if it fired).
        await Assert.ThrowsAsync<TimeoutException>(() => Task.Delay(Timeout.Infinite, calls[1]).WaitAsync(Short * 3));
        Outcome third = await session.RunAsync(kind, body, Short, InterceptorFailurePolicy.Refuse, null, null, default);

        Assert.Equal("XX000", first.SqlState);
        Assert.Equal(Outcome.Continue, second);
        Assert.Equal(Outcome.Continue, third);
        Assert.True(calls[0].IsCancellationRequested);
        Assert.NotEqual(calls[0], calls[1]); // a source that fired is replaced...
        Assert.Equal(calls[1], calls[2]); // ...and one that was reset serves the next call
        Assert.False(calls[1].IsCancellationRequested);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task When_the_session_ends_the_call_is_cancelled_not_failed(string kind)
    {
        using var ending = new CancellationTokenSource();
        Session session = NewSession();

        Task<Outcome> running = session.RunAsync(
            kind,
            async cancellationToken => await Task.Delay(Timeout.Infinite, cancellationToken),
            Long,
            InterceptorFailurePolicy.PassThrough,
            null,
            null,
            ending.Token);
        await ending.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
        Assert.DoesNotContain(logger.Lines, line => line.Contains("failed", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task A_call_that_completes_at_once_allocates_nothing(string kind)
    {
        Session session = NewSession();
        Func<CancellationToken, ValueTask> body = _ => default;
        Func<Task> run = session.Prepare(kind, body, Long, settingsPolicy: null);
        await run(); // the first call creates the session's timeout source and timer

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            session.RunPreparedAtOnce();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Each_entry_counts_its_calls_failures_and_timeouts_with_their_time(string kind)
    {
        Session session = NewSession();
        int call = 0;
        Func<CancellationToken, ValueTask> body = async cancellationToken =>
        {
            switch (++call)
            {
                case 1: // goes on at once
                    return;
                case 2:
                    throw new InvalidOperationException("plugin bug");
                case 3:
                    throw new RefusedException("28000", "not you");
                case 4:
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                    return;
                default: // goes on later
                    await Task.Yield();
                    return;
            }
        };
        InstanceInterceptors interceptors = Session.Entries(body, Short, InterceptorFailurePolicy.PassThrough, null, null);

        for (int i = 0; i < 5; i++)
        {
            await session.RunAsync(kind, interceptors, default);
        }

        InterceptorCounts counts = Session.Counters(kind, interceptors).Read();
        Assert.Equal((5L, 1L, 1L), (counts.Calls, counts.Failures, counts.Timeouts));

        // The timed-out call alone took its timeout (a timer may fire a little early, never much).
        Assert.True(counts.MeanMicroseconds * counts.Calls >= Short.TotalMicroseconds * 0.8, $"{counts.MeanMicroseconds} µs per call");
        Assert.Equal(counts.Calls, interceptors.CountsOf("test").Calls);
        Assert.Equal(default, interceptors.CountsOf("other"));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task A_call_cut_short_by_the_session_ending_counts_as_a_call_and_not_a_failure(string kind)
    {
        using var ending = new CancellationTokenSource();
        Session session = NewSession();
        InstanceInterceptors interceptors = Session.Entries(async cancellationToken => await Task.Delay(Timeout.Infinite, cancellationToken), Long, null, null, null);

        Task<Outcome> running = session.RunAsync(kind, interceptors, ending.Token);
        await ending.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);

        InterceptorCounts counts = Session.Counters(kind, interceptors).Read();
        Assert.Equal((1L, 0L, 0L), (counts.Calls, counts.Failures, counts.Timeouts));
    }

    [Fact]
    public void Counts_of_a_plugin_add_up_its_entries_of_every_kind_and_no_other()
    {
        var plugin = new Plugin(_ => default);
        var interceptors = new InstanceInterceptors(
            [new NamedInterceptor<IQueryInterceptor>("a.q", plugin) { Plugin = "a" }, new NamedInterceptor<IQueryInterceptor>("b.q", plugin) { Plugin = "b" }],
            [new NamedInterceptor<IStartupInterceptor>("a.c", plugin) { Plugin = "a" }],
            [new NamedInterceptor<IResponseInterceptor>("a.r", plugin) { Plugin = "a" }, new NamedInterceptor<IResponseInterceptor>("code", plugin)],
            Long,
            failurePolicy: null);
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        interceptors.Queries[0].Counters.Called(now);
        interceptors.Queries[1].Counters.Called(now);
        interceptors.Connects[0].Counters.Called(now);
        interceptors.Connects[0].Counters.Failed();
        interceptors.Responses[0].Counters.Called(now);
        interceptors.Responses[0].Counters.TimedOut();
        interceptors.Responses[1].Counters.Called(now);

        InterceptorCounts a = interceptors.CountsOf("a");

        Assert.Equal((3L, 1L, 1L), (a.Calls, a.Failures, a.Timeouts));
        Assert.Equal(1, interceptors.CountsOf("b").Calls);
    }

    [Fact]
    public void Each_entry_takes_its_own_keys_then_the_settings_then_its_kind_default()
    {
        var plugin = new Plugin(_ => default);
        var interceptors = new InstanceInterceptors(
            [new NamedInterceptor<IQueryInterceptor>("q.own", plugin) { OnError = InterceptorFailurePolicy.Refuse, Timeout = Short }, new NamedInterceptor<IQueryInterceptor>("q.default", plugin)],
            [new NamedInterceptor<IStartupInterceptor>("c.default", plugin)],
            [new NamedInterceptor<IResponseInterceptor>("r.default", plugin), new NamedInterceptor<IResponseInterceptor>("r.own", plugin) { OnError = InterceptorFailurePolicy.PassThrough }],
            Long,
            failurePolicy: null);
        var everywhere = new InstanceInterceptors(
            [new NamedInterceptor<IQueryInterceptor>("q.default", plugin)],
            [new NamedInterceptor<IStartupInterceptor>("c.default", plugin)],
            [new NamedInterceptor<IResponseInterceptor>("r.default", plugin)],
            Long,
            InterceptorFailurePolicy.Refuse);

        Assert.Equal((Short, InterceptorFailurePolicy.Refuse), (interceptors.Queries[0].Timeout, interceptors.Queries[0].OnError));
        Assert.Equal((Long, InterceptorFailurePolicy.PassThrough), (interceptors.Queries[1].Timeout, interceptors.Queries[1].OnError));
        Assert.Equal(InterceptorFailurePolicy.PassThrough, interceptors.Connects[0].OnError);
        Assert.Equal(InterceptorFailurePolicy.Refuse, interceptors.Responses[0].OnError);
        Assert.Equal(InterceptorFailurePolicy.PassThrough, interceptors.Responses[1].OnError);
        Assert.Equal(InterceptorFailurePolicy.Refuse, everywhere.Queries[0].OnError);
        Assert.Equal(InterceptorFailurePolicy.Refuse, everywhere.Connects[0].OnError);
        Assert.Equal(InterceptorFailurePolicy.Refuse, everywhere.Responses[0].OnError);
    }

    private static ValueTask Throws(CancellationToken cancellationToken) => throw new InvalidOperationException("plugin bug");

    private static void AssertFollows(InterceptorFailurePolicy policy, Outcome outcome, string reason)
    {
        if (policy == InterceptorFailurePolicy.PassThrough)
        {
            Assert.Equal(Outcome.Continue, outcome);
            return;
        }

        Assert.Equal("XX000", outcome.SqlState);
        Assert.Equal($"PgProxy interceptor \"test.plugin\" failed: {reason}", outcome.Message);
    }

    private Task<Outcome> RunAsync(
        string kind,
        Func<CancellationToken, ValueTask> body,
        TimeSpan settingsTimeout,
        InterceptorFailurePolicy? settingsPolicy,
        InterceptorFailurePolicy? onError = null,
        TimeSpan? timeout = null) =>
        NewSession().RunAsync(kind, body, settingsTimeout, settingsPolicy, onError, timeout, default);

    private Session NewSession() => new(new SessionContext(7, "proxy", null, [new("user", "alice")], new ServerProtocolState(), logger));

    /// <summary>What a call came to, the same for every kind: go on, or refuse with a SQLSTATE and message.</summary>
    private readonly record struct Outcome(string? SqlState, string? Message)
    {
        public static Outcome Continue => default;
    }

    /// <summary>One session's runners, one of each kind, as the engine keeps them.</summary>
    private sealed class Session(SessionContext context)
    {
        private readonly InterceptorRunner<IQueryInterceptor, QueryMessage, QueryDecision> queries = new(InterceptorKinds.Query, context);
        private readonly InterceptorRunner<IStartupInterceptor, StartupRequest, StartupDecision> connects = new(InterceptorKinds.Connect, context);
        private readonly InterceptorRunner<IResponseInterceptor, ResponseMessage, ResponseDecision> responses = new(InterceptorKinds.Response, context);
        private readonly QueryMessage query = new(QueryMessageKind.SimpleQuery, "SELECT 1", null, []);
        private readonly StartupRequest startup = new([new("user", "alice")]);
        private readonly ResponseMessage row = ResponseMessage.ForDataRow([], [], Encoding.UTF8);
        private Action? prepared;

        public async Task<Outcome> RunAsync(
            string kind,
            Func<CancellationToken, ValueTask> body,
            TimeSpan settingsTimeout,
            InterceptorFailurePolicy? settingsPolicy,
            InterceptorFailurePolicy? onError,
            TimeSpan? timeout,
            CancellationToken cancellationToken)
        {
            return await RunAsync(kind, Entries(body, settingsTimeout, settingsPolicy, onError, timeout), cancellationToken);
        }

        /// <summary>One call of the first entry of <paramref name="kind"/> in <paramref name="interceptors"/>, built by the test once for many calls.</summary>
        public async Task<Outcome> RunAsync(string kind, InstanceInterceptors interceptors, CancellationToken cancellationToken)
        {
            switch (kind)
            {
                case "query":
                    QueryDecision query = await queries.RunAsync(interceptors.Queries[0], this.query, cancellationToken);
                    return new Outcome(query.RefusalSqlState, query.RefusalMessage);
                case "connect":
                    StartupDecision startup = await connects.RunAsync(interceptors.Connects[0], this.startup, cancellationToken);
                    return new Outcome(startup.RefusalSqlState, startup.RefusalMessage);
                default:
                    ResponseDecision response = await responses.RunAsync(interceptors.Responses[0], row, cancellationToken);
                    return new Outcome(response.RefusalSqlState, response.RefusalMessage);
            }
        }

        public static InterceptorCounters Counters(string kind, InstanceInterceptors interceptors) => kind switch
        {
            "query" => interceptors.Queries[0].Counters,
            "connect" => interceptors.Connects[0].Counters,
            _ => interceptors.Responses[0].Counters,
        };

        /// <summary>Sets up <see cref="RunPreparedAtOnce"/> for one kind, and returns a first, warming call.</summary>
        public Func<Task> Prepare(string kind, Func<CancellationToken, ValueTask> body, TimeSpan settingsTimeout, InterceptorFailurePolicy? settingsPolicy)
        {
            InstanceInterceptors interceptors = Entries(body, settingsTimeout, settingsPolicy, null, null);
            InterceptorEntry<IQueryInterceptor> queryEntry = interceptors.Queries[0];
            InterceptorEntry<IStartupInterceptor> connectEntry = interceptors.Connects[0];
            InterceptorEntry<IResponseInterceptor> responseEntry = interceptors.Responses[0];
            prepared = kind switch
            {
                "query" => () => AtOnce(queries.RunAsync(queryEntry, query, default)),
                "connect" => () => AtOnce(connects.RunAsync(connectEntry, startup, default)),
                _ => () => AtOnce(responses.RunAsync(responseEntry, row, default)),
            };
            return () => RunAsync(kind, body, settingsTimeout, settingsPolicy, null, null, default);
        }

        public void RunPreparedAtOnce() => prepared!();

        private static void AtOnce<T>(ValueTask<T> pending)
        {
            Assert.True(pending.IsCompletedSuccessfully);
            _ = pending.Result;
        }

        public static InstanceInterceptors Entries(
            Func<CancellationToken, ValueTask> body,
            TimeSpan settingsTimeout,
            InterceptorFailurePolicy? settingsPolicy,
            InterceptorFailurePolicy? onError,
            TimeSpan? timeout)
        {
            var plugin = new Plugin(body);
            return new InstanceInterceptors(
                [new NamedInterceptor<IQueryInterceptor>("test.plugin", plugin) { OnError = onError, Timeout = timeout, Plugin = "test" }],
                [new NamedInterceptor<IStartupInterceptor>("test.plugin", plugin) { OnError = onError, Timeout = timeout, Plugin = "test" }],
                [new NamedInterceptor<IResponseInterceptor>("test.plugin", plugin) { OnError = onError, Timeout = timeout, Plugin = "test" }],
                settingsTimeout,
                settingsPolicy);
        }
    }

    /// <summary>One plugin body seen as each kind of interceptor; what the body throws at once, the method throws at once.</summary>
    private sealed class Plugin(Func<CancellationToken, ValueTask> body) : IQueryInterceptor, IStartupInterceptor, IResponseInterceptor
    {
        public ResponseKinds Kinds => ResponseKinds.All;

        public ValueTask<QueryDecision> InterceptQueryAsync(QueryMessage query, ISessionContext session, CancellationToken cancellationToken) =>
            Then(body(cancellationToken), QueryDecision.Continue);

        public ValueTask<StartupDecision> InterceptStartupAsync(StartupRequest startup, ISessionContext session, CancellationToken cancellationToken) =>
            Then(body(cancellationToken), StartupDecision.Continue);

        public ValueTask InterceptResponseAsync(ResponseMessage message, ISessionContext session, CancellationToken cancellationToken) =>
            body(cancellationToken);

        private static ValueTask<T> Then<T>(ValueTask pending, T result) =>
            pending.IsCompletedSuccessfully ? new(result) : AwaitThen(pending, result);

        private static async ValueTask<T> AwaitThen<T>(ValueTask pending, T result)
        {
            await pending;
            return result;
        }
    }

    private sealed class ListLogger : ILogger
    {
        private readonly ConcurrentQueue<string> lines = new();

        public IReadOnlyCollection<string> Lines => lines;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{formatter(state, exception)} {exception?.Message}");
    }
}
