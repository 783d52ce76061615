namespace PgProxy.Core.Hosting;

/// <summary>What kept a proxy from starting, so a host can tell its operator by an exit code, not only by a message.</summary>
public enum StartupFailure
{
    /// <summary>A file the configuration names cannot be used: a certificate, a key, a CA bundle, an auth-file.</summary>
    Files,

    /// <summary>A plugin cannot be found, compiled or loaded, or rules need a SQL parser that is not installed.</summary>
    Plugins,

    /// <summary>A listening address cannot be bound: taken, not on this host, or a privileged port.</summary>
    Listen,
}

/// <summary>
/// The first load of a configuration failed. <see cref="Exception.Message"/> holds every problem, one per line, each
/// naming the instance (or section), the address or file, and the system's reason.
/// </summary>
public sealed class StartupException : InvalidOperationException
{
    public StartupException()
    {
    }

    public StartupException(string message)
        : base(message)
    {
    }

    public StartupException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public StartupException(StartupFailure failure, IReadOnlyList<string> problems)
        : base(string.Join('\n', problems))
    {
        Failure = failure;
        Problems = problems;
    }

    /// <summary>The kind of the first problem found (start-up stops at the first stage that fails).</summary>
    public StartupFailure Failure { get; }

    /// <summary>Every problem of that stage, one line each.</summary>
    public IReadOnlyList<string> Problems { get; } = [];
}
