using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Hosting;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Admin;

/// <summary>A reload applies the admin section like the rest of the file: the console comes, moves and goes, and its auth-file is read again.</summary>
[Collection(SharedPostgres.Name)]
public sealed class ConsoleReloadTests(PostgresFixture fixture) : IDisposable
{
    private readonly ConsoleSetup console = ConsoleSetup.Create();

    public void Dispose() => console.Dispose();

    [Fact]
    public async Task A_reload_adds_keeps_and_removes_the_console_and_its_listener()
    {
        ProxyConfig withoutConsole = TestConfigs.Relay(fixture.Server.Host, fixture.Server.Port);
        ProxyConfig next = withoutConsole;
        using ILoggerFactory logs = LoggerFactory.Create(_ => { });
        await using var server = new ProxyServer(new ConfigurationSource(withoutConsole) { Reload = () => next }, logs);
        await server.StartAsync();
        int instancePort = server.GetEndpoints("proxy")[0].Port;
        var onInstance = new PsqlTarget("127.0.0.1", instancePort, ConsoleSetup.User, "pgproxy", ConsoleSetup.Password);
        var relayed = new PsqlTarget("127.0.0.1", instancePort, PostgresServer.TrustUser, "pgproxy");
        Assert.Empty(server.GetConsoleEndpoints());
        Assert.Contains("database \"pgproxy\" does not exist", (await Psql.RunAsync(relayed, "SHOW VERSION;\n")).StandardError, StringComparison.Ordinal);

        next = console.Config(fixture.Server);
        Assert.True((await server.Configuration.ReloadAsync()).Applied);
        int consolePort = server.GetConsoleEndpoints()[0].Port;
        await ConsolePsql.QueryAsync(onInstance, "SHOW VERSION");
        await ConsolePsql.QueryAsync(onInstance with { Port = consolePort }, "SHOW VERSION");

        // The same section again: the listener stays where it is (port 0 is not bound anew).
        Assert.True((await server.Configuration.ReloadAsync()).Applied);
        Assert.Equal(consolePort, server.GetConsoleEndpoints()[0].Port);

        next = console.Config(fixture.Server, listen: false);
        Assert.True((await server.Configuration.ReloadAsync()).Applied);
        Assert.Empty(server.GetConsoleEndpoints());
        Assert.NotEqual(0, (await Psql.RunAsync(onInstance with { Port = consolePort }, "SHOW VERSION;\n")).ExitCode);
        await ConsolePsql.QueryAsync(onInstance, "SHOW VERSION");

        next = withoutConsole;
        Assert.True((await server.Configuration.ReloadAsync()).Applied);
        Assert.Contains("database \"pgproxy\" does not exist", (await Psql.RunAsync(relayed, "SHOW VERSION;\n")).StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_broken_auth_file_fails_the_reload_and_the_console_keeps_its_users()
    {
        ProxyConfig config = console.Config(fixture.Server);
        using ILoggerFactory logs = LoggerFactory.Create(_ => { });
        await using var server = new ProxyServer(new ConfigurationSource(config) { Reload = () => config }, logs);
        await server.StartAsync();
        string good = await File.ReadAllTextAsync(console.AuthFile);

        await File.WriteAllTextAsync(console.AuthFile, good + "\"plain\" \"a password in clear\"\n");
        ReloadResult reload = await server.Configuration.ReloadAsync();

        Assert.False(reload.Applied);
        Assert.Contains($"admin.auth-file {console.AuthFile}: the entry of user \"plain\" is neither a SCRAM-SHA-256 verifier", Assert.Single(reload.Errors), StringComparison.Ordinal);
        var target = new PsqlTarget("127.0.0.1", server.GetConsoleEndpoints()[0].Port, ConsoleSetup.User, "pgproxy", ConsoleSetup.Password);
        await ConsolePsql.QueryAsync(target, "SHOW VERSION");
    }

    [Fact]
    public async Task Pgproxy_check_names_the_console_and_refuses_an_auth_file_that_is_not_one()
    {
        string section = $"\nadmin:\n  users: [ops]\n  auth-file: {console.AuthFile}\n";
        using ConfigDirectory directory = ConfigDirectory.Create(ConfigDirectory.OneInstance(fixture.Server) + section);

        ProcessResult valid = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);
        await File.WriteAllTextAsync(console.AuthFile, "\"ops\" \"opspass\"\n");
        ProcessResult invalid = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.True(valid.Succeeded, valid.ToString());
        Assert.Contains($"admin console: database \"pgproxy\" on every instance; users ops, verifiers from {console.AuthFile}", valid.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(1, invalid.ExitCode);
        Assert.Contains("admin.auth-file", invalid.StandardError, StringComparison.Ordinal);
        Assert.Contains("the entry of user \"ops\" is neither", invalid.StandardError, StringComparison.Ordinal);
    }
}
