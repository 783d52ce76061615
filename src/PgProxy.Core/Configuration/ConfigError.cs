namespace PgProxy.Core.Configuration;

/// <summary>One problem found in a configuration file.</summary>
/// <param name="KeyPath">Where in the file, e.g. <c>instances[0].listen.port</c>; empty when the problem is not with one key (unreadable file, YAML syntax).</param>
/// <param name="Line">1-based line; 0 when the problem has no position (e.g. the file cannot be read).</param>
/// <param name="Column">1-based column; 0 when the problem has no position.</param>
/// <param name="Message">What is wrong, for the user.</param>
public sealed record ConfigError(string KeyPath, int Line, int Column, string Message)
{
    /// <summary>The line the user sees: <c>FILE:LINE:COLUMN: KEYPATH: message</c>, the form editors and CI logs link to the source.</summary>
    public string Format(string fileName)
    {
        var location = Line > 0 ? $"{fileName}:{Line}:{Column}" : fileName;
        return KeyPath.Length > 0 ? $"{location}: {KeyPath}: {Message}" : $"{location}: {Message}";
    }
}
