using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Abstractions;
using PgProxy.Plugins.TableauHll.Analysis;
using PgProxy.Plugins.TableauHll.Metadata;

namespace PgProxy.Plugins.Tests.TableauHll;

/// <summary>The column-type cache's rules: one question per table until it expires, and a bound on what clients can make it hold.</summary>
public sealed class ColumnTypeCacheTests
{
    [Fact]
    public async Task Asks_once_per_table_until_the_entry_expires()
    {
        var time = new ManualTime();
        var cache = new ColumnTypeCache(TimeSpan.FromSeconds(60), time);
        var session = new AnsweringSession();
        RelationName[] events = [new(null, "events")];

        IColumnTypes first = await cache.GetAsync(events, session, CancellationToken.None);
        await cache.GetAsync(events, session, CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(61));
        await cache.GetAsync(events, session, CancellationToken.None);

        Assert.Equal(2, session.Questions);
        Assert.Equal(true, first.ColumnsOf(events[0])?["visitors"]);
    }

    [Fact]
    public async Task Names_chosen_by_clients_cannot_grow_the_cache_past_its_bound()
    {
        var cache = new ColumnTypeCache(TimeSpan.FromSeconds(60), new ManualTime()) { MaxEntries = 100 };
        var session = new AnsweringSession();

        for (int i = 0; i < 1_000; i++)
        {
            await cache.GetAsync([new RelationName(null, "no_such_table_" + i.ToString(CultureInfo.InvariantCulture))], session, CancellationToken.None);
            Assert.InRange(cache.Count, 1, 100);
        }
    }

    private sealed class ManualTime : TimeProvider
    {
        private long ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => ticks;

        public void Advance(TimeSpan by) => ticks += by.Ticks;
    }

    /// <summary>A session whose metadata answer gives every table asked about one hll column, "visitors".</summary>
    private sealed class AnsweringSession : ISessionContext
    {
        public int Questions { get; private set; }

        public string InstanceName => "test";

        public EndPoint? ClientAddress => null;

        public string User => "tableau";

        public string Database => "crm";

        public string? ApplicationName => null;

        public IReadOnlyDictionary<string, string> StartupParameters { get; } = new Dictionary<string, string>();

        public Encoding ClientEncoding => Encoding.UTF8;

        public TransactionStatus TransactionStatus => TransactionStatus.Idle;

        public IDictionary<string, object?> State { get; } = new Dictionary<string, object?>();

        public ILogger Logger => NullLogger.Instance;

        public Task<UpstreamQueryResult> QueryUpstreamAsync(string sql, CancellationToken cancellationToken = default)
        {
            Questions++;
            return Task.FromResult(new UpstreamQueryResult(["ord", "attname", "is_hll"], [["1", "visitors", "t"]]));
        }
    }
}
