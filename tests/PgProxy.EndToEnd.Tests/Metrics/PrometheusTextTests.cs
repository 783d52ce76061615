namespace PgProxy.EndToEnd.Tests.Metrics;

/// <summary>The test's own text-format parser: what it accepts, what it refuses, and the histogram checks it makes.</summary>
public class PrometheusTextTests
{
    private const string Valid = """
        # TYPE pgproxy_bytes_total counter
        # HELP pgproxy_bytes_total Bytes relayed.
        pgproxy_bytes_total{direction="client_to_server",listen="proxy"} 300
        pgproxy_bytes_total{direction="server_to_client",listen="a \"quoted\\ name\n"} 1.5E+03 1700000000000
        # TYPE pgproxy_query_duration_seconds histogram
        pgproxy_query_duration_seconds_bucket{listen="proxy",le="5E-05"} 0
        pgproxy_query_duration_seconds_bucket{listen="proxy",le="0.001"} 2
        pgproxy_query_duration_seconds_bucket{listen="proxy",le="+Inf"} 3
        pgproxy_query_duration_seconds_sum{listen="proxy"} 0.5
        pgproxy_query_duration_seconds_count{listen="proxy"} 3
        # TYPE pgproxy_reload_last_success gauge
        pgproxy_reload_last_success{} 1

        """;

    [Fact]
    public void Samples_labels_escapes_values_and_types_are_read()
    {
        PrometheusScrape scrape = PrometheusScrape.Parse(Valid);

        Assert.Equal(8, scrape.Samples.Count);
        Assert.Equal(300, scrape.Value("pgproxy_bytes_total", ("listen", "proxy")));
        Assert.Equal(1500, scrape.Value("pgproxy_bytes_total", ("listen", "a \"quoted\\ name\n")));
        Assert.Equal(1, scrape.Value("pgproxy_reload_last_success"));
        Assert.Equal("histogram", scrape.Types["pgproxy_query_duration_seconds"]);
        Assert.Empty(scrape.HistogramProblems());
    }

    [Theory]
    [InlineData("pgproxy_x{listen=\"a\"}\n", "expected a value")]
    [InlineData("pgproxy_x{listen=a} 1\n", "malformed label")]
    [InlineData("pgproxy_x{1listen=\"a\"} 1\n", "malformed label")]
    [InlineData("pgproxy_x{listen=\"a\",listen=\"b\"} 1\n", "label listen twice")]
    [InlineData("pgproxy_x 1 2 3\n", "expected a value")]
    [InlineData("pgproxy_x one\n", "is not a value")]
    [InlineData("# TYPE pgproxy_x countr\n", "malformed TYPE")]
    [InlineData("pgproxy_x 1\n# TYPE pgproxy_x counter\n", "after its samples")]
    [InlineData("pgproxy_x 1\npgproxy_y 1\npgproxy_x 2\n", "split up")]
    public void Malformed_text_is_refused_naming_the_line(string text, string problem)
    {
        var error = Assert.Throws<FormatException>(() => PrometheusScrape.Parse(text));

        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
        Assert.StartsWith("line ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Inconsistent_histograms_are_reported()
    {
        PrometheusScrape scrape = PrometheusScrape.Parse("""
            # TYPE h histogram
            h_bucket{le="0.1"} 5
            h_bucket{le="1"} 4
            h_bucket{le="+Inf"} 6
            h_count 7
            """);

        Assert.Equal(
            [
                "h{}: bucket le=1 counts 4, less than le=0.1 with 5",
                "h{}: le=+Inf counts 6, _count is 7",
                "h{}: no _sum",
            ],
            scrape.HistogramProblems());
    }
}
