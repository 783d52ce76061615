using Microsoft.Extensions.Time.Testing;
using PgProxy.Core.Listening;

namespace PgProxy.Core.Tests.Listening;

/// <summary>Accept failures (EMFILE) in a row: logged at most once a second, retried after a pause that doubles up to a second.</summary>
public sealed class AcceptFailuresTests
{
    [Fact]
    public void A_thousand_failures_within_a_second_log_one_line_then_the_next_second_says_how_many_were_not_logged()
    {
        var time = new FakeTimeProvider();
        var failures = new AcceptFailures(time);
        int logged = 0;
        for (int i = 0; i < 1000; i++)
        {
            logged += failures.Failed(out _) ? 1 : 0;
            time.Advance(TimeSpan.FromMilliseconds(0.5));
        }

        time.Advance(TimeSpan.FromSeconds(1));
        bool next = failures.Failed(out long suppressed);

        Assert.Equal(1, logged);
        Assert.True(next);
        Assert.Equal(999, suppressed);
    }

    [Fact]
    public void The_pause_doubles_from_5_ms_to_at_most_a_second_and_starts_again_after_a_success()
    {
        var failures = new AcceptFailures(new FakeTimeProvider());
        var pauses = new List<TimeSpan>();
        for (int i = 0; i < 12; i++)
        {
            failures.Failed(out _);
            pauses.Add(failures.Pause);
        }

        long? recovered = failures.Recovered();
        failures.Failed(out _);

        Assert.Equal(TimeSpan.FromMilliseconds(5), pauses[0]);
        Assert.Equal(TimeSpan.FromMilliseconds(10), pauses[1]);
        Assert.Equal(TimeSpan.FromSeconds(1), pauses[^1]);
        Assert.All(pauses, pause => Assert.True(pause <= TimeSpan.FromSeconds(1)));
        Assert.Equal(12, recovered);
        Assert.Equal(TimeSpan.FromMilliseconds(5), failures.Pause);
        Assert.Null(new AcceptFailures().Recovered());
    }
}
