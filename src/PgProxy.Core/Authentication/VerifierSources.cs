using System.Text;
using PgProxy.Core.Configuration;
using PgProxy.Core.Tls;

namespace PgProxy.Core.Authentication;

/// <summary>What a verifier lookup found: the stored verifier text, or why there is none (for the log only).</summary>
internal readonly record struct VerifierLookup(string? Verifier, string? Failure);

/// <summary>Where the proxy finds a user's SCRAM verifier when it ends SCRAM itself.</summary>
internal interface IVerifierSource
{
    /// <summary>The setting that supplies verifiers, for log lines.</summary>
    string Description { get; }

    Task<VerifierLookup> FindAsync(string user, string database, CancellationToken cancellationToken);
}

/// <summary>
/// <c>auth-file</c>: one user per line, <c>"user" "SCRAM-SHA-256$..."</c>, as PgBouncer's userlist.txt and
/// pg_authid hold them. Blank lines and lines starting with <c>#</c> or <c>;</c> are comments; a quote inside a
/// quoted string is written twice. Read when the instance starts and on every reload.
/// </summary>
internal sealed class AuthFileVerifiers : IVerifierSource
{
    private readonly Dictionary<string, string> verifiers;
    private readonly string file;
    private readonly string key;

    private AuthFileVerifiers(string key, string file, Dictionary<string, string> verifiers)
    {
        this.key = key;
        this.file = file;
        this.verifiers = verifiers;
    }

    public string Description => $"{key} {file}";

    /// <summary>Every user and the verifier text the file gives it.</summary>
    public IReadOnlyDictionary<string, string> Entries => verifiers;

    /// <param name="file">The file to read.</param>
    /// <param name="key">The setting that names it, for errors and log lines (<c>admin.auth-file</c> for the console's).</param>
    /// <exception cref="SecurityMaterialException">The file is missing, unreadable or has a malformed line (named by number).</exception>
    public static AuthFileVerifiers Load(string file, string key = "auth.auth-file")
    {
        TlsFiles.EnsureReadable(key, file);
        var verifiers = new Dictionary<string, string>(StringComparer.Ordinal);
        string[] lines = File.ReadAllLines(file);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            if (line.Length == 0 || line[0] is '#' or ';')
            {
                continue;
            }

            int position = 0;
            if (!TryReadQuoted(line, ref position, out string? user) || !SkipSpaces(line, ref position)
                || !TryReadQuoted(line, ref position, out string? verifier) || line[position..].Trim().Length != 0)
            {
                throw new SecurityMaterialException($"{key} {file}:{i + 1}: expected \"user\" \"SCRAM-SHA-256$...\"");
            }

            verifiers[user!] = verifier!;
        }

        return new AuthFileVerifiers(key, file, verifiers);
    }

    public Task<VerifierLookup> FindAsync(string user, string database, CancellationToken cancellationToken) =>
        Task.FromResult(verifiers.TryGetValue(user, out string? verifier)
            ? new VerifierLookup(verifier, null)
            : new VerifierLookup(null, $"user \"{user}\" is not in {Description}"));

    private static bool SkipSpaces(string line, ref int position)
    {
        int start = position;
        while (position < line.Length && char.IsWhiteSpace(line[position]))
        {
            position++;
        }

        return position > start;
    }

    private static bool TryReadQuoted(string line, ref int position, out string? value)
    {
        value = null;
        if (position >= line.Length || line[position] != '"')
        {
            return false;
        }

        var text = new StringBuilder();
        position++;
        while (position < line.Length)
        {
            char c = line[position++];
            if (c != '"')
            {
                text.Append(c);
            }
            else if (position < line.Length && line[position] == '"')
            {
                text.Append('"');
                position++;
            }
            else
            {
                value = text.ToString();
                return true;
            }
        }

        return false;
    }
}

/// <summary><c>auth-query</c>: the verifier read from the upstream itself, by <c>auth-user</c>, for each login.</summary>
internal sealed class AuthQueryVerifiers(AuthConfig config, EndpointConfig upstream, UpstreamTls tls, TimeSpan connectTimeout) : IVerifierSource
{
    public string Description => $"auth.auth-query run by \"{config.AuthUser}\"";

    public async Task<VerifierLookup> FindAsync(string user, string database, CancellationToken cancellationToken)
    {
        try
        {
            string? verifier = await AuthQueryClient.RunAsync(config, upstream, tls, connectTimeout, database, user, cancellationToken).ConfigureAwait(false);
            return verifier is null
                ? new VerifierLookup(null, $"{Description} found no verifier for user \"{user}\"")
                : new VerifierLookup(verifier, null);
        }
        catch (AuthQueryException e)
        {
            return new VerifierLookup(null, $"{Description} failed: {e.Message}");
        }
    }
}
