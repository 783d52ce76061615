using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Hosting;
using PgProxy.Core.Interception;

namespace PgProxy.Core.Tests.Hosting;

/// <summary>
/// The configuration owner without sockets: a snapshot is swapped in whole or not at all, and a reload that fails
/// anywhere keeps the last good one.
/// </summary>
public sealed class ConfigurationOwnerTests : IDisposable
{
    private static readonly string BaseDirectory = Path.Combine(Path.GetTempPath(), "pgproxy-owner-tests");
    private readonly ProxyMetrics metrics = new();
    private readonly FakeListeners listeners = new();
    private readonly Queue<Func<ProxyConfig>> files = new();

    private static string Yaml(string upstreamHost = "db-one", string extraInstance = "", string settings = "") => $"""
        settings:
          log-level: info
        {settings}
        instances:
          - listen:
              name: proxy
              host: 127.0.0.1
              port: 6432
            redirect:
              name: db
              host: {upstreamHost}
              port: 5432
        {extraInstance}
        """;

    private static ProxyConfig Parse(string yaml) => ConfigLoader.Parse(yaml, BaseDirectory, "config.yml");

    private ConfigurationOwner Owner(ProxyConfig initial, InterceptorPipelineBuilder? interceptors = null, params IReloadableSettings[] reloadables)
    {
        var source = new ConfigurationSource(initial)
        {
            Reload = () => files.Dequeue()(),
            Interceptors = interceptors ?? ((_, _, _) => InterceptorPipelines.None),
            Reloadables = reloadables,
        };
        return new ConfigurationOwner(source, NullLoggerFactory.Instance, metrics, listeners);
    }

    public void Dispose() => metrics.Dispose();

    [Fact]
    public async Task The_first_load_runs_generation_one_with_an_environment_per_instance()
    {
        using ConfigurationOwner owner = Owner(Parse(Yaml()));

        await owner.StartAsync(CancellationToken.None);

        Assert.Equal(1, owner.Current!.Generation);
        Assert.Equal("db-one", owner.Current.Environments["proxy"].Instance.Redirect.Host);
        Assert.Equal(1, listeners.Committed);
    }

    [Fact]
    public async Task The_first_load_fails_fast_with_every_problem()
    {
        using ConfigurationOwner owner = Owner(
            Parse(Yaml()),
            (_, _, errors) =>
            {
                errors.Add("config line 9: plugin \"a\", function \"f\" not found");
                errors.Add("config line 12: plugin \"a\", function \"g\" not found");
                return null;
            });

        var failure = await Assert.ThrowsAsync<StartupException>(() => owner.StartAsync(CancellationToken.None));
        Assert.Equal(StartupFailure.Plugins, failure.Failure);

        Assert.Contains("line 9", failure.Message, StringComparison.Ordinal);
        Assert.Contains("line 12", failure.Message, StringComparison.Ordinal);
        Assert.Null(owner.Current);
        Assert.Equal(0, listeners.Prepared);
    }

    [Fact]
    public async Task A_reload_swaps_in_the_whole_next_snapshot_and_says_what_changed()
    {
        var logging = new FakeReloadable();
        using ConfigurationOwner owner = Owner(Parse(Yaml()), reloadables: logging);
        await owner.StartAsync(CancellationToken.None);
        ConfigSnapshot first = owner.Current!;
        string extra = """
              - listen:
                  name: reports
                  host: 127.0.0.1
                  port: 6433
                redirect:
                  name: db
                  host: db-one
                  port: 5432
            """;
        files.Enqueue(() => Parse(Yaml("db-two", extra)));

        ReloadResult result = await owner.ReloadAsync();

        Assert.True(result.Applied, string.Join('\n', result.Errors));
        Assert.Equal(2, result.Generation);
        ConfigSnapshot second = owner.Current!;
        Assert.NotSame(first, second);
        Assert.Equal("db-two", second.Environments["proxy"].Instance.Redirect.Host);
        Assert.Equal("proxy,reports", string.Join(",", second.Environments.Keys.Order()));
        Assert.Equal("db-one", first.Environments["proxy"].Instance.Redirect.Host);
        Assert.Same(second.Config, logging.Applied);
        Assert.Equal(2, listeners.Committed);
        Assert.Contains(result.Changes, c => c.StartsWith("instance \"reports\" added", StringComparison.Ordinal));
        Assert.Contains(result.Changes, c => c.Contains("relay to \"db\" at db-two:5432", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_reload_of_an_invalid_file_keeps_the_running_snapshot_and_names_the_key_and_line()
    {
        var logging = new FakeReloadable();
        using ConfigurationOwner owner = Owner(Parse(Yaml()), reloadables: logging);
        await owner.StartAsync(CancellationToken.None);
        ConfigSnapshot first = owner.Current!;
        files.Enqueue(() => Parse(Yaml().Replace("port: 5432", "port: lots", StringComparison.Ordinal)));

        ReloadResult result = await owner.ReloadAsync();

        Assert.False(result.Applied);
        Assert.Equal(1, result.Generation);
        Assert.Same(first, owner.Current);
        string error = Assert.Single(result.Errors);
        Assert.StartsWith("config.yml:12:", error, StringComparison.Ordinal);
        Assert.Contains("instances[0].redirect.port", error, StringComparison.Ordinal);
        Assert.Equal(1, listeners.Prepared);
        Assert.Null(logging.Applied);
    }

    [Fact]
    public async Task A_reload_reports_every_problem_of_every_part_at_once_and_keeps_the_running_snapshot()
    {
        string missing = Path.Combine(BaseDirectory, "missing.crt");
        int builds = 0;
        using ConfigurationOwner owner = Owner(
            Parse(Yaml()),
            (_, _, errors) =>
            {
                if (++builds == 1)
                {
                    return InterceptorPipelines.None;
                }

                errors.Add("config line 14: plugin \"a\", function \"f\" not found");
                return null;
            },
            new FakeReloadable { Problem = "settings.general-log /nope/general.log: cannot create its directory" });
        await owner.StartAsync(CancellationToken.None);
        ConfigSnapshot first = owner.Current!;
        files.Enqueue(() => Parse(Yaml().Replace(
            "      port: 6432",
            $"      port: 6432\n      tls:\n        mode: require\n        cert-file: {missing}\n        key-file: {missing}",
            StringComparison.Ordinal)));

        ReloadResult result = await owner.ReloadAsync();

        Assert.False(result.Applied);
        Assert.Same(first, owner.Current);
        Assert.Contains(result.Errors, e => e.Contains("listen.tls.cert-file", StringComparison.Ordinal) && e.Contains(missing, StringComparison.Ordinal));
        Assert.Contains(result.Errors, e => e.StartsWith("config line 14:", StringComparison.Ordinal));
        Assert.Contains(result.Errors, e => e.StartsWith("settings.general-log", StringComparison.Ordinal));
        Assert.Equal(1, listeners.Prepared);
    }

    [Fact]
    public async Task A_reload_whose_address_cannot_be_bound_keeps_the_running_snapshot_and_closes_what_it_bound()
    {
        var logging = new FakeReloadable();
        using ConfigurationOwner owner = Owner(Parse(Yaml()), reloadables: logging);
        await owner.StartAsync(CancellationToken.None);
        ConfigSnapshot first = owner.Current!;
        files.Enqueue(() => Parse(Yaml("db-two")));
        listeners.NextProblem = "instance \"proxy\" cannot listen on 127.0.0.1:6432: Address already in use";

        ReloadResult result = await owner.ReloadAsync();

        Assert.False(result.Applied);
        Assert.Same(first, owner.Current);
        Assert.Equal(1, listeners.Committed);
        Assert.Equal(1, listeners.Abandoned);
        Assert.Null(logging.Applied);
        Assert.Contains("Address already in use", Assert.Single(result.Errors), StringComparison.Ordinal);

        // The next good reload applies as if the bad one never happened.
        files.Enqueue(() => Parse(Yaml("db-two")));
        ReloadResult retried = await owner.ReloadAsync();
        Assert.True(retried.Applied);
        Assert.Equal(2, owner.Current!.Generation);
    }

    [Fact]
    public async Task No_reload_applies_once_stopping_began()
    {
        using ConfigurationOwner owner = Owner(Parse(Yaml()));
        await owner.StartAsync(CancellationToken.None);
        ConfigSnapshot first = owner.Current!;
        await owner.StopAsync();
        files.Enqueue(() => Parse(Yaml("db-two")));

        ReloadResult result = await owner.ReloadAsync();

        Assert.False(result.Applied);
        Assert.Same(first, owner.Current);
        Assert.Equal(1, listeners.Prepared);
    }

    [Fact]
    public async Task Reloads_asked_for_at_once_run_one_after_the_other()
    {
        using ConfigurationOwner owner = Owner(Parse(Yaml()));
        await owner.StartAsync(CancellationToken.None);
        for (int i = 0; i < 8; i++)
        {
            files.Enqueue(() => Parse(Yaml("db-two")));
        }

        ReloadResult[] results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => owner.ReloadAsync())));

        Assert.All(results, r => Assert.True(r.Applied));
        Assert.Equal(Enumerable.Range(2, 8).Select(g => (long)g), results.Select(r => r.Generation).Order());
        Assert.Equal(9, owner.Current!.Generation);
    }

    /// <summary>Stands in for the server's listeners: counts what the owner asks of them, and can refuse a bind.</summary>
    private sealed class FakeListeners : ISnapshotTarget
    {
        public int Prepared { get; private set; }

        public int Committed { get; private set; }

        public int Abandoned { get; private set; }

        public string? NextProblem { get; set; }

        public Task<IListenerChange> PrepareAsync(ConfigSnapshot next, ICollection<string> errors, CancellationToken cancellationToken)
        {
            Prepared++;
            if (NextProblem is { } problem)
            {
                errors.Add(problem);
                NextProblem = null;
            }

            return Task.FromResult<IListenerChange>(new Change(this));
        }

        private sealed class Change(FakeListeners owner) : IListenerChange
        {
            private bool committed;

            public Task CommitAsync()
            {
                committed = true;
                owner.Committed++;
                return Task.CompletedTask;
            }

            public ValueTask DisposeAsync()
            {
                if (!committed)
                {
                    owner.Abandoned++;
                }

                return ValueTask.CompletedTask;
            }
        }
    }

    private sealed class FakeReloadable : IReloadableSettings
    {
        public string? Problem { get; init; }

        public ProxyConfig? Applied { get; private set; }

        public IReadOnlyList<string> Check(ProxyConfig config) => Problem is null ? [] : [Problem];

        public ValueTask ApplyAsync(ProxyConfig config, CancellationToken cancellationToken)
        {
            Applied = config;
            return ValueTask.CompletedTask;
        }
    }
}
