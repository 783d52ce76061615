using PgProxy.Abstractions;
using PgProxy.Core.Interception;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Interception;

/// <summary>Interception seen by psql (libpq, simple protocol), next to the Npgsql and raw-socket tests.</summary>
[Collection(SharedPostgres.Name)]
public sealed class PsqlInterceptionTests(PostgresFixture fixture)
{
    [Fact]
    public async Task Psql_sees_rewritten_refused_and_masked_results_and_its_session_goes_on()
    {
        var interceptors = new InstanceInterceptors(
            [
                new NamedInterceptor<IQueryInterceptor>("test.rename", Interceptors.Replace("'old name'", "'new name'")),
                new NamedInterceptor<IQueryInterceptor>("test.refuse", Interceptors.RefuseContaining("pg_shadow", "42501", "pg_shadow is off limits")),
            ],
            [],
            [new NamedInterceptor<IResponseInterceptor>("test.mask", ResponseInterceptors.MaskEmail())],
            TimeSpan.FromSeconds(5),
            InterceptorFailurePolicy.Refuse);
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(fixture.Server, interceptors);

        ProcessResult result = await Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.ScramUser, PostgresServer.ScramPassword),
            """
            SELECT 'old name' AS renamed;
            SELECT usename FROM pg_shadow;
            SELECT 'alice@example.com' AS email, 'visible' AS other;
            SELECT 'still connected' AS after;
            """,
            new PsqlOptions { OnErrorStop = false, Arguments = ["-At"] });

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(["new name", "***|visible", "still connected"], result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("ERROR:  pg_shadow is off limits", result.StandardError, StringComparison.Ordinal);
    }
}
