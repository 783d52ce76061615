// A start-up plugin: sees the StartupMessage parameters before PgProxy connects upstream.
// Configured under intercept.commands.connects as {plugin: connect_policy, function: check_startup}.
public static class ConnectPolicy
{
    public static StartupDecision CheckStartup(StartupRequest startup, ISessionContext context)
    {
        if (startup["user"] == "intern")
        {
            return StartupDecision.Refuse("28000", "user \"intern\" may not connect through this proxy");
        }

        // Tools that do not name themselves show up in pg_stat_activity under the instance's name.
        if (string.IsNullOrEmpty(startup["application_name"]))
        {
            startup["application_name"] = $"via-pgproxy-{context.InstanceName}";
        }

        return StartupDecision.Continue;
    }
}
