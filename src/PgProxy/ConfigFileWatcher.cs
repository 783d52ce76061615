using PgProxy.Core.Configuration;
using PgProxy.Core.Hosting;

namespace PgProxy.Host;

/// <summary>
/// <c>settings.watch-config: true</c>: a change of the configuration file runs the same full reload as SIGHUP, once the
/// file has been quiet for <see cref="Debounce"/> (an editor writes a file in several steps, or replaces it by a
/// rename). Follows reloads: a reload that turns the key off stops watching, one that turns it on starts.
/// </summary>
internal sealed class ConfigFileWatcher : IReloadableSettings, IDisposable
{
    public static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(500);

    private readonly string path;
    private readonly Func<Task> reload;
    private readonly Timer quiet;
    private readonly Lock gate = new();
    private FileSystemWatcher? watcher;

    public ConfigFileWatcher(string path, Func<Task> reload)
    {
        this.path = Path.GetFullPath(path);
        this.reload = reload;
        quiet = new Timer(_ => _ = reload(), null, Timeout.Infinite, Timeout.Infinite);
    }

    public IReadOnlyList<string> Check(ProxyConfig config) => [];

    public ValueTask ApplyAsync(ProxyConfig config, CancellationToken cancellationToken)
    {
        Apply(config);
        return ValueTask.CompletedTask;
    }

    /// <summary>Starts or stops watching as <c>settings.watch-config</c> says.</summary>
    public void Apply(ProxyConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        lock (gate)
        {
            if (config.Settings.WatchConfig == watcher is not null)
            {
                return;
            }

            if (!config.Settings.WatchConfig)
            {
                watcher!.Dispose();
                watcher = null;
                return;
            }

            watcher = new FileSystemWatcher(Path.GetDirectoryName(path)!, Path.GetFileName(path))
            {
                NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            watcher.Changed += OnChange;
            watcher.Created += OnChange;
            watcher.Renamed += OnChange;
            watcher.EnableRaisingEvents = true;
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            watcher?.Dispose();
            watcher = null;
        }

        quiet.Dispose();
    }

    private void OnChange(object sender, FileSystemEventArgs e) => quiet.Change(Debounce, Timeout.InfiniteTimeSpan);
}
