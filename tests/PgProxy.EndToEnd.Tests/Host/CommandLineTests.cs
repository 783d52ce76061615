using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Host;

/// <summary>The pgproxy command line as users meet it: --version, --help, check, and the errors of a bad file.</summary>
public sealed class CommandLineTests
{
    /// <summary>The original proxy's config.yml without the plugin it names: no plugins list, no interceptor entry.</summary>
    private static readonly string SeedConfigWithoutPlugin = SeedConfiguration.Yaml
        .Replace("plugins:\n  - tableau_hll\n\n", "", StringComparison.Ordinal)
        .Replace("          - plugin: tableau_hll\n            function: rewrite_query\n", "", StringComparison.Ordinal);

    /// <summary>The original proxy's config.yml, exactly as it was shipped.</summary>
    private static readonly string SeedConfig = SeedConfiguration.Yaml;

    [Fact]
    public async Task Version_prints_a_version_and_exits_0()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync("--version");

        Assert.True(result.Succeeded, result.ToString());
        Assert.Matches(@"^\d+\.\d+\.\d+", result.StandardOutput.Trim());
    }

    [Fact]
    public async Task Help_lists_the_config_option_and_the_check_command()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync("--help");

        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains("pgproxy", result.StandardOutput, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^\s+-c, --config\b", result.StandardOutput);
        Assert.Matches(@"(?m)^\s+check\s+\S", result.StandardOutput);
    }

    [Fact]
    public async Task Help_of_check_lists_its_config_option()
    {
        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "--help");

        Assert.True(result.Succeeded, result.ToString());
        Assert.Matches(@"(?m)^\s+-c, --config\b", result.StandardOutput);
    }

    [Fact]
    public async Task Check_accepts_the_original_config_without_its_plugin_and_prints_each_instance()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfigWithoutPlugin);

        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains("valid", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("instance \"proxy\"", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1:5111", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("\"postgresql\" 127.0.0.1:5432", result.StandardOutput, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(directory.Path, "logs")), "check must not create the log directories");
    }

    [Fact]
    public async Task Check_prints_every_instance_of_a_config_with_two()
    {
        using ConfigDirectory directory = ConfigDirectory.Create("""
            instances:
              - listen: { name: first, host: 127.0.0.1, port: 6001 }
                redirect: { name: pg1, host: 127.0.0.1, port: 5432 }
              - listen: { name: second, host: 127.0.0.1, port: 6002 }
                redirect: { name: pg2, host: 127.0.0.1, port: 5433 }
            """);

        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains("instance \"first\": listen 127.0.0.1:6001", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("instance \"second\": listen 127.0.0.1:6002", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_refuses_a_plugin_found_nowhere_naming_the_plugin_and_its_line()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfig.Replace("tableau_hll", "reporting_rules", StringComparison.Ordinal));

        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("pgproxy: plugin \"reporting_rules\" (config line 2) not found: looked for ", result.StandardError, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(directory.Path, "plugins", "reporting_rules.cs"), result.StandardError, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(AppContext.BaseDirectory, "plugins", "reporting_rules", "reporting_rules.dll"), result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Running_with_a_plugin_found_nowhere_fails_at_start_up()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfig.Replace("tableau_hll", "reporting_rules", StringComparison.Ordinal));

        ProcessResult result = await ProxyProcess.RunToEndAsync("--config", directory.ConfigFile);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("plugin \"reporting_rules\" (config line 2) not found", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_accepts_the_original_config_as_is_with_the_plugin_that_ships_with_pgproxy()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfig);

        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains(
            $"plugin \"tableau_hll\": compiled assembly {Path.Combine(AppContext.BaseDirectory, "plugins", "tableau_hll", "tableau_hll.dll")}",
            result.StandardOutput,
            StringComparison.Ordinal);
        Assert.Contains("queries: tableau_hll.rewrite_query -> PgProxy.Plugins.TableauHll.TableauHll.RewriteQuery(QueryMessage, ISessionContext, CancellationToken)", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_the_parser_library_check_names_the_package_and_instances_without_sql_plugins_still_pass()
    {
        var missingLibrary = new Dictionary<string, string?> { ["PGPROXY_LIBPG_QUERY"] = "/nonexistent/libpg_query.so" };
        using ConfigDirectory withPlugin = ConfigDirectory.Create(SeedConfig);
        using ConfigDirectory withoutPlugin = ConfigDirectory.Create(SeedConfigWithoutPlugin);

        ProcessResult refused = await ProcessRunner.RunAsync(
            "dotnet", [ProxyProcess.AssemblyPath, "check", "--config", withPlugin.ConfigFile], TimeSpan.FromSeconds(60), environment: missingLibrary);
        ProcessResult accepted = await ProcessRunner.RunAsync(
            "dotnet", [ProxyProcess.AssemblyPath, "check", "--config", withoutPlugin.ConfigFile], TimeSpan.FromSeconds(60), environment: missingLibrary);

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("plugin \"tableau_hll\" (config line 2) needs the PostgreSQL parser: the PostgreSQL parser library libpg_query could not be loaded from /nonexistent/libpg_query.so", refused.StandardError, StringComparison.Ordinal);
        Assert.Contains("apt-get install libpg-query-dev", refused.StandardError, StringComparison.Ordinal);
        Assert.True(accepted.Succeeded, accepted.ToString());
    }

    [Fact]
    public async Task Check_loads_the_original_config_with_a_seed_style_plugin_and_prints_its_function()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfig);
        WritePlugin(directory, """
            public static class TableauHll
            {
                public static string RewriteQuery(string query, ISessionContext context) => query;
            }
            """);

        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains($"plugin \"tableau_hll\": C# source file {Path.Combine(directory.Path, "plugins", "tableau_hll.cs")}", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("queries: tableau_hll.rewrite_query -> TableauHll.RewriteQuery(String, ISessionContext)", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_resolves_response_interceptors_and_names_the_line_of_a_wrong_signature()
    {
        string config = SeedConfig.Replace("      responses:", "      responses:\n        - plugin: tableau_hll\n          function: mask_rows\n        - plugin: tableau_hll\n          function: broken", StringComparison.Ordinal);
        using ConfigDirectory directory = ConfigDirectory.Create(config);
        WritePlugin(directory, """
            public static class TableauHll
            {
                public static string RewriteQuery(string query) => query;

                [ResponseKinds(ResponseKinds.DataRow)]
                public static void MaskRows(ResponseMessage message, ISessionContext context) { }

                public static string Broken(ResponseMessage message) => "";
            }
            """);

        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("config line 27: plugin \"tableau_hll\", function \"broken\": TableauHll.Broken(ResponseMessage) does not have a signature PgProxy accepts here", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("mask_rows", result.StandardError, StringComparison.Ordinal);

        File.WriteAllText(directory.ConfigFile, config.Replace("\n        - plugin: tableau_hll\n          function: broken", "", StringComparison.Ordinal));
        ProcessResult fixedUp = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.True(fixedUp.Succeeded, fixedUp.ToString());
        Assert.Contains("responses: tableau_hll.mask_rows -> TableauHll.MaskRows(ResponseMessage, ISessionContext)", fixedUp.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_reports_a_plugin_compile_error_with_file_line_and_code()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfig);
        string file = WritePlugin(directory, """
            public static class TableauHll
            {
                public static string RewriteQuery(string query) => quer;
            }
            """);

        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("plugin \"tableau_hll\" (config line 2) failed to compile", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"{file}(3,", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("error CS0103", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_names_the_line_of_a_function_the_plugin_does_not_have()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfig);
        WritePlugin(directory, "public static class TableauHll { }");

        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("config line 21: plugin \"tableau_hll\", function \"rewrite_query\" not found", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_names_the_key_and_line_of_an_unknown_key_and_of_a_port_of_the_wrong_type()
    {
        using ConfigDirectory directory = ConfigDirectory.Create("""
            settings:
              log-level: info
              log_max_size: 10MB
            instances:
              - listen:
                  name: proxy
                  host: 127.0.0.1
                  port: abc
                redirect:
                  name: postgresql
                  host: 127.0.0.1
                  port: 5432
            """);

        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("config.yml:3:", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("settings.log_max_size", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("config.yml:8:", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("instances[0].listen.port", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("'abc'", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Running_an_invalid_config_exits_non_zero_without_listening()
    {
        using ConfigDirectory directory = ConfigDirectory.Create("""
            instances:
              - listen: { name: proxy, host: 127.0.0.1, port: "5111" }
                redirect: { name: postgresql, host: 127.0.0.1, port: 5432 }
            """);

        ProcessResult result = await ProxyProcess.RunToEndAsync("--config", directory.ConfigFile);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("config.yml:2:", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("instances[0].listen.port", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("listening", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_config_file_exits_non_zero_with_a_clear_message()
    {
        string missing = Path.Combine(Path.GetTempPath(), "pgproxy-missing-" + Guid.NewGuid().ToString("N"), "config.yml");

        ProcessResult check = await ProxyProcess.RunToEndAsync("check", "--config", missing);
        ProcessResult run = await ProxyProcess.RunToEndAsync("--config", missing);

        foreach (ProcessResult result in new[] { check, run })
        {
            Assert.NotEqual(0, result.ExitCode);
            Assert.Contains("does not exist", result.StandardError, StringComparison.Ordinal);
            Assert.Contains("config.yml", result.StandardError, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_short_option_c_names_the_config_file()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfigWithoutPlugin);

        ProcessResult result = await ProxyProcess.RunToEndAsync("check", "-c", directory.ConfigFile);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Contains("instance \"proxy\"", result.StandardOutput, StringComparison.Ordinal);
    }

    private static string WritePlugin(ConfigDirectory directory, string source)
    {
        string plugins = Path.Combine(directory.Path, "plugins");
        Directory.CreateDirectory(plugins);
        string file = Path.Combine(plugins, "tableau_hll.cs");
        File.WriteAllText(file, source);
        return file;
    }
}
