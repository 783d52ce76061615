using PgProxy.Core.Authentication;
using PgProxy.Core.Configuration;
using PgProxy.Core.Tls;
using PgProxy.Protocol.Authentication;

namespace PgProxy.Core.Admin;

/// <summary>
/// The admin console of one configuration snapshot: who may log in and with which verifier, and the running proxy it
/// reports on and steers. Built with the snapshot (the auth-file is read at start and on each reload, and a broken
/// one fails the reload like any other file); a console session keeps the one current when it started.
/// </summary>
internal sealed class AdminConsole
{
    private readonly HashSet<string> users;
    private readonly IReadOnlyDictionary<string, string> verifiers;
    private readonly string description;

    private AdminConsole(AdminConfig config, IConsoleHost host, IReadOnlyDictionary<string, string> verifiers, string description)
    {
        Config = config;
        Host = host;
        this.verifiers = verifiers;
        this.description = description;
        users = new HashSet<string>(config.Users, StringComparer.Ordinal);
    }

    public AdminConfig Config { get; }

    /// <summary>The proxy the commands act on.</summary>
    public IConsoleHost Host { get; }

    /// <summary>Reads <c>admin.auth-file</c>; every verifier in it must be SCRAM-SHA-256 or md5.</summary>
    /// <exception cref="SecurityMaterialException">The file is missing, unreadable, malformed, or holds something else (a plain password).</exception>
    public static AdminConsole Load(AdminConfig config, IConsoleHost host)
    {
        AuthFileVerifiers file = ReadVerifiers(config);
        return new AdminConsole(config, host, file.Entries, file.Description);
    }

    /// <summary>Reads every file the section names (the auth-file, and admin.tls's certificate and key), as a load would: for <c>pgproxy check</c>.</summary>
    /// <exception cref="SecurityMaterialException">A file is missing or unusable; the message names the key and the file.</exception>
    public static void CheckFiles(AdminConfig config)
    {
        ReadVerifiers(config);
        if (config.Listen is not null)
        {
            InstanceSecurity.ForConsole(config.Tls);
        }
    }

    private static AuthFileVerifiers ReadVerifiers(AdminConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        AuthFileVerifiers file = AuthFileVerifiers.Load(config.AuthFile, "admin.auth-file");
        foreach ((string user, string verifier) in file.Entries)
        {
            if (!ScramVerifier.TryParse(verifier, out _) && !PasswordMessages.IsMd5Verifier(verifier))
            {
                // A plain password in a file would be one more copy of a secret; the verifiers are what pg_authid holds.
                throw new SecurityMaterialException(
                    $"admin.auth-file {config.AuthFile}: the entry of user \"{user}\" is neither a SCRAM-SHA-256 verifier (\"SCRAM-SHA-256$...\") nor an md5 one (\"md5\" and 32 hex digits)");
            }
        }

        return file;
    }

    /// <summary>Whether <paramref name="user"/> is in <c>admin.users</c>.</summary>
    public bool Allows(string user) => users.Contains(user);

    /// <summary>The user's verifier from the auth-file, or null (the login then fails as a wrong password would).</summary>
    public string? VerifierOf(string user) => verifiers.GetValueOrDefault(user);

    /// <summary>Where verifiers come from, for log lines.</summary>
    public string VerifierSource => description;
}
