using PgProxy.Core.Authentication;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tls;

/// <summary>
/// What one instance's sessions need for TLS and for ending SCRAM: the server certificate, the upstream TLS
/// settings with their CA and client certificate, and the verifier source. Loaded from files when the instance
/// starts and again on each reload; a session takes the current one when it starts and keeps it.
/// </summary>
internal sealed class InstanceSecurity
{
    private InstanceSecurity(ServerTls? server, UpstreamTls upstream, IVerifierSource? verifiers)
    {
        Server = server;
        Upstream = upstream;
        Verifiers = verifiers;
    }

    /// <summary>Null when <c>listen.tls.mode</c> is disable.</summary>
    public ServerTls? Server { get; }

    public UpstreamTls Upstream { get; }

    /// <summary>Null when the instance has no <c>auth</c> section.</summary>
    public IVerifierSource? Verifiers { get; }

    /// <summary>
    /// What the admin console's own listener needs: its certificate (<c>admin.tls</c>), nothing upstream. Its sessions
    /// never connect to a server, so the upstream settings are plain text and read no file.
    /// </summary>
    /// <exception cref="SecurityMaterialException">A file is missing or unusable; the message names the key and the file.</exception>
    public static InstanceSecurity ForConsole(ListenTlsConfig tls) =>
        new(ServerTls.Load(tls, "admin.tls"), UpstreamTls.Load(new UpstreamTlsConfig { Mode = UpstreamTlsMode.Disable }), null);

    /// <summary>Reads every file the instance's TLS and auth settings name.</summary>
    /// <exception cref="SecurityMaterialException">A file is missing or unusable; the message names the instance, the key and the file.</exception>
    public static InstanceSecurity Load(InstanceConfig instance)
    {
        try
        {
            ServerTls? server = ServerTls.Load(instance.ListenTls);
            UpstreamTls upstream = UpstreamTls.Load(instance.UpstreamTls);
            IVerifierSource? verifiers = instance.Auth switch
            {
                null => null,
                { AuthFile: { } file } => AuthFileVerifiers.Load(file),
                { } auth => new AuthQueryVerifiers(auth, instance.Redirect, upstream, instance.Limits.ConnectTimeout),
            };
            return new InstanceSecurity(server, upstream, verifiers);
        }
        catch (SecurityMaterialException e)
        {
            throw new SecurityMaterialException($"instance \"{instance.Listen.Name}\": {e.Message}", e);
        }
    }
}
