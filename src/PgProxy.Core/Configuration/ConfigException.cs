namespace PgProxy.Core.Configuration;

/// <summary>
/// A configuration file was rejected. <see cref="Errors"/> holds every problem found, not just the first,
/// so a user fixes them all in one round; <see cref="Exception.Message"/> lists them one per line.
/// </summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string fileName, IReadOnlyList<ConfigError> errors, Exception? innerException = null)
        : base(FormatErrors(fileName, errors), innerException)
    {
        FileName = fileName;
        Errors = errors;
    }

    public ConfigException()
        : this("configuration", [])
    {
    }

    public ConfigException(string message)
        : this(message, innerException: null)
    {
    }

    public ConfigException(string message, Exception? innerException)
        : base(message, innerException)
    {
        FileName = "configuration";
        Errors = [new ConfigError("", 0, 0, message)];
    }

    /// <summary>The file name as it appears at the start of each error line.</summary>
    public string FileName { get; }

    /// <summary>Every problem found, in file order.</summary>
    public IReadOnlyList<ConfigError> Errors { get; }

    private static string FormatErrors(string fileName, IReadOnlyList<ConfigError> errors)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        ArgumentNullException.ThrowIfNull(errors);
        return errors.Count == 0
            ? $"{fileName}: invalid configuration"
            : string.Join('\n', errors.Select(error => error.Format(fileName)));
    }
}
