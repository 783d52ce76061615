using System.Diagnostics;
using System.Text;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>
/// Each interceptor entry's <c>on-error</c> and <c>timeout</c>, read from the configuration by the real pgproxy process,
/// and the defaults of each kind when <c>settings.plugin-failure</c> is absent.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class InterceptorFailureTests(PostgresFixture fixture)
{
    private const string Plugin = """
        public static class Flaky
        {
            private static readonly TaskCompletionSource fired = new(TaskCreationOptions.RunContinuationsAsynchronously);

            public static string Broken(string query) => query.Contains("boom", StringComparison.Ordinal) ? throw new InvalidOperationException("plugin bug") : query;

            public static string Strict(string query) => query.Contains("bang", StringComparison.Ordinal) ? throw new InvalidOperationException("plugin bug") : query;

            // Waits for the slow interceptor's token to have fired (its callback may run a moment after PgProxy moved on),
            // within the query interceptor's own 5 s timeout.
            public static async Task<string> Report(string query)
            {
                if (!query.Contains("'fired?'", StringComparison.Ordinal))
                {
                    return query;
                }

                try
                {
                    await fired.Task.WaitAsync(TimeSpan.FromSeconds(4));
                    return query.Replace("'fired?'", "'fired'", StringComparison.Ordinal);
                }
                catch (TimeoutException)
                {
                    return query.Replace("'fired?'", "'not fired'", StringComparison.Ordinal);
                }
            }

            public static async ValueTask Slow(ResponseMessage message, ISessionContext context, CancellationToken cancellationToken)
            {
                if (message.Kind == ResponseKinds.DataRow && message.GetText(0) == "slow")
                {
                    using CancellationTokenRegistration registration = cancellationToken.Register(() => fired.TrySetResult());
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                }
            }
        }
        """;

    private const string Intercept = """

            intercept:
              commands:
                queries:
                  - plugin: flaky
                    function: broken
                  - plugin: flaky
                    function: strict
                    on-error: refuse
                  - plugin: flaky
                    function: report
              responses:
                - plugin: flaky
                  function: slow
                  timeout: 300ms
        """;

    [Fact]
    public async Task A_query_passes_by_default_an_entry_refuses_on_its_on_error_and_a_row_is_withheld_at_its_own_timeout()
    {
        string yaml = ConfigDirectory.OneInstance(fixture.Server, "  plugin-dir: plugins")
            .Replace("settings:", "plugins:\n  - flaky\nsettings:", StringComparison.Ordinal) + Intercept;
        using ConfigDirectory directory = ConfigDirectory.Create(yaml);
        Directory.CreateDirectory(Path.Combine(directory.Path, "plugins"));
        await File.WriteAllTextAsync(Path.Combine(directory.Path, "plugins", "flaky.cs"), Plugin);
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using RawPgClient client = await RawPgClient.ConnectAsync("127.0.0.1", proxy.PortOf("proxy"));
        await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);

        List<RawMessage> boom = await AskAsync(client, "SELECT 'boom'");
        List<RawMessage> bang = await AskAsync(client, "SELECT 'bang'");
        var clock = Stopwatch.StartNew();
        List<RawMessage> slow = await AskAsync(client, "SELECT 'slow'");
        TimeSpan withheldAfter = clock.Elapsed;
        string fired = Text((await AskAsync(client, "SELECT 'fired?'")).Single(m => m.Code == 'D'));

        Assert.Equal("boom", Text(boom.Single(m => m.Code == 'D')));
        RawMessage refused = bang.Single(m => m.Code == 'E');
        Assert.Equal("XX000", refused.SqlState);
        Assert.Contains("\"flaky.strict\" failed: plugin bug", refused.Fields()['M'], StringComparison.Ordinal);
        Assert.Equal("TCZ", new string([.. slow.Select(m => m.Code)]));
        Assert.True(withheldAfter < TimeSpan.FromSeconds(4), $"the row was withheld after {withheldAfter}, not at its 300 ms timeout");
        Assert.Equal("fired", fired);
    }

    private static async Task<List<RawMessage>> AskAsync(RawPgClient client, string sql)
    {
        await client.SendAsync(RawPgClient.Query(sql));
        return await client.ReadUntilReadyAsync();
    }

    private static string Text(RawMessage row) => Encoding.UTF8.GetString(row.Body, 6, row.Body.Length - 6);
}
