using System.Globalization;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Hosting;

/// <summary>What a reload changes, in words for the log: which instances come and go, and what moves.</summary>
internal static class ConfigChanges
{
    public static IReadOnlyList<string> Describe(ProxyConfig running, ProxyConfig next)
    {
        var changes = new List<string>();
        foreach (InstanceConfig instance in next.Instances)
        {
            string name = instance.Listen.Name;
            InstanceConfig? current = running.Instances.FirstOrDefault(i => i.Listen.Name == name);
            if (current is null)
            {
                changes.Add($"instance \"{name}\" added: listens on {Address(instance.Listen)}");
                continue;
            }

            if (!SameAddress(current.Listen, instance.Listen))
            {
                changes.Add($"instance \"{name}\": listens on {Address(instance.Listen)} instead of {Address(current.Listen)}, where its open sessions run to their end");
            }

            if (current.Redirect != instance.Redirect)
            {
                changes.Add($"instance \"{name}\": new sessions relay to \"{instance.Redirect.Name}\" at {Address(instance.Redirect)} instead of \"{current.Redirect.Name}\" at {Address(current.Redirect)}; open sessions keep theirs");
            }

            AddIf(current.Limits != instance.Limits, name, "limits");
            AddIf(current.ListenTls != instance.ListenTls || current.UpstreamTls != instance.UpstreamTls, name, "tls");
            AddIf(current.Auth != instance.Auth, name, "auth");
            AddIf(!SameIntercept(current.Intercept, instance.Intercept), name, "intercept");
        }

        foreach (InstanceConfig instance in running.Instances.Where(i => next.Instances.All(n => n.Listen.Name != i.Listen.Name)))
        {
            changes.Add($"instance \"{instance.Listen.Name}\" removed: stops accepting on {Address(instance.Listen)}; its open sessions run to their end");
        }

        if (running.Settings != next.Settings)
        {
            changes.Add("settings changed");
        }

        if (running.Metrics != next.Metrics)
        {
            changes.Add(next.Metrics is { } metrics ? $"metrics endpoint: listens on {metrics.Host}:{metrics.Port}" : "metrics endpoint removed");
        }

        if (running.Admin != next.Admin)
        {
            changes.Add(next.Admin is null ? "admin removed: database \"pgproxy\" is relayed again; open console sessions run to their end"
                : running.Admin is null ? "admin added: the console answers database \"pgproxy\"" + (next.Admin.Listen is { } listen ? $" and listens on {Address(listen)}" : string.Empty)
                : "admin changed");
        }

        if (!running.Plugins.SequenceEqual(next.Plugins))
        {
            changes.Add("plugins changed");
        }

        return changes;

        void AddIf(bool changed, string name, string what)
        {
            if (changed)
            {
                changes.Add($"instance \"{name}\": {what} changed");
            }
        }
    }

    /// <summary>The same host and port: a listener bound there can go on serving (port 0 only for the same instance).</summary>
    public static bool SameAddress(EndpointConfig a, EndpointConfig b) =>
        string.Equals(a.Host, b.Host, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;

    private static bool SameIntercept(InterceptConfig a, InterceptConfig b) =>
        a.Queries.SequenceEqual(b.Queries) && a.Connects.SequenceEqual(b.Connects) && a.Responses.SequenceEqual(b.Responses);

    private static string Address(EndpointConfig endpoint) =>
        string.Create(CultureInfo.InvariantCulture, $"{endpoint.Host}:{endpoint.Port}");
}
