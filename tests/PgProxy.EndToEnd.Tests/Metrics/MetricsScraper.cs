using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Metrics;

/// <summary>Scrapes a metrics endpoint over HTTP as Prometheus does, and waits on what the scrapes show.</summary>
public static partial class MetricsScraper
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    /// <summary>One <c>GET</c>, asking for the text format Prometheus understands; the answer parsed strictly.</summary>
    public static async Task<PrometheusScrape> ScrapeAsync(string url)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Accept.Add(MediaTypeWithQualityHeaderValue.Parse("text/plain; version=0.0.4"));
        using HttpResponseMessage response = await Http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        return PrometheusScrape.Parse(await response.Content.ReadAsStringAsync());
    }

    /// <summary>Scrapes until <paramref name="condition"/> holds for a scrape, which it returns; TimeoutException naming <paramref name="what"/> after the deadline.</summary>
    public static async Task<PrometheusScrape> ScrapeUntilAsync(string url, Func<PrometheusScrape, bool> condition, string what)
    {
        PrometheusScrape? last = null;
        try
        {
            await Waiting.WaitUntilAsync(
                async () =>
                {
                    last = await ScrapeAsync(url);
                    return condition(last);
                },
                Deadline,
                what);
        }
        catch (TimeoutException e) when (last is not null)
        {
            throw new TimeoutException($"{e.Message} The last scrape:\n{string.Join('\n', last.Samples.Where(s => !s.Name.EndsWith("_bucket", StringComparison.Ordinal)))}", e);
        }

        return last!;
    }

    /// <summary>The URLs the process's log says its metrics endpoint listens on, in order.</summary>
    public static IReadOnlyList<string> ListeningUrls(string output) =>
        [.. ListeningLine().Matches(output).Select(m => m.Groups["url"].Value)];

    /// <summary>Waits for the log line of the endpoint's (next) listening address and returns its URL.</summary>
    public static async Task<string> WaitForListeningAsync(ProxyProcess proxy, int seen = 0)
    {
        await proxy.WaitForOutputAsync(output => ListeningUrls(output).Count > seen, Deadline, "the metrics endpoint to listen");
        Assert.False(proxy.HasExited, proxy.Output);
        return ListeningUrls(proxy.Output)[seen];
    }

    [GeneratedRegex(@"Metrics endpoint listening on (?<url>http://\S+/metrics)")]
    private static partial Regex ListeningLine();
}
