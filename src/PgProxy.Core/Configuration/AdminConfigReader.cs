namespace PgProxy.Core.Configuration;

/// <summary>Reads and validates the top-level <c>admin</c> section, reporting each problem with its key and line as the rest of the loader does.</summary>
internal static class AdminConfigReader
{
    /// <summary>The name the console's own listener carries in log lines and errors.</summary>
    public const string ListenName = "admin";

    private static readonly string[] AdminKeys = ["listen", "users", "auth-file", "tls"];
    private static readonly string[] ListenKeys = ["host", "port"];

    /// <summary>The section, or null when absent; <paramref name="instances"/> are checked for an address the console's listener would clash with.</summary>
    public static AdminConfig? Read(ConfigNodeReader reader, ConfigNode? node, IReadOnlyList<InstanceConfig> instances, string baseDirectory)
    {
        if (node is not { } section)
        {
            return null;
        }

        ConfigMapping mapping = reader.Mapping(section, AdminKeys);
        EndpointConfig? listen = ReadListen(reader, mapping.Optional("listen"), instances);
        List<string> users = ReadUsers(reader, mapping.Required("users"));
        string? authFile = mapping.Required("auth-file") is { } file ? ConfigLoader.ReadPath(reader, file, baseDirectory) : null;
        ConfigNode? tlsNode = mapping.Optional("tls");
        ListenTlsConfig tls = ConfigLoader.ReadListenTls(reader, tlsNode, baseDirectory);
        if (tlsNode is { } given && listen is null && mapping.Optional("listen") is null)
        {
            // On an instance's port TLS is negotiated before the start-up names the database: that port's listen.tls applies.
            reader.Report(given, "admin.tls applies to admin.listen, which is not set; the console on an instance's port uses that instance's listen.tls");
        }

        return new AdminConfig
        {
            Listen = listen,
            Users = users,
            AuthFile = authFile ?? string.Empty,
            Tls = tls,
        };
    }

    private static EndpointConfig? ReadListen(ConfigNodeReader reader, ConfigNode? node, IReadOnlyList<InstanceConfig> instances)
    {
        if (node is not { } section)
        {
            return null;
        }

        ConfigMapping mapping = reader.Mapping(section, ListenKeys);
        string? host = mapping.Required("host") is { } hostNode ? reader.Text(hostNode) : null;
        int? port = mapping.Required("port") is { } portNode ? reader.Integer(portNode, 0, 65535) : null;
        if (host is null || port is not { } number)
        {
            return null;
        }

        // Port 0 asks the system for a free port each time, so it never clashes.
        InstanceConfig? same = instances.FirstOrDefault(instance =>
            number != 0 && instance.Listen.Port == number && string.Equals(instance.Listen.Host, host, StringComparison.OrdinalIgnoreCase));
        if (same is not null)
        {
            reader.Report(section, $"{host}:{number} is already listened on by instance '{same.Listen.Name}'");
        }

        return new EndpointConfig(ListenName, host, number);
    }

    private static List<string> ReadUsers(ConfigNodeReader reader, ConfigNode? node)
    {
        var users = new List<string>();
        if (node is not { } list)
        {
            return users;
        }

        IReadOnlyList<ConfigNode> items = reader.Sequence(list);
        if (items.Count == 0 && list.Node is YamlDotNet.RepresentationModel.YamlSequenceNode)
        {
            reader.Report(list, "at least one user is required: nobody could log in to the console");
        }

        foreach (ConfigNode item in items)
        {
            if (reader.Text(item) is not { } user)
            {
                continue;
            }

            if (users.Contains(user, StringComparer.Ordinal))
            {
                reader.Report(item, $"user '{user}' is listed twice");
                continue;
            }

            users.Add(user);
        }

        return users;
    }
}
