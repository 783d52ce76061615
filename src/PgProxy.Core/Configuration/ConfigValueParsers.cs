using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace PgProxy.Core.Configuration;

/// <summary>The text forms of configuration values: sizes, durations, log levels, rotations.</summary>
internal static partial class ConfigValueParsers
{
    public const long Kilobyte = 1024;
    public const long Megabyte = 1024 * Kilobyte;
    public const long Gigabyte = 1024 * Megabyte;

    /// <summary>Names accepted by <c>log-level</c>; Python's names (warn, fatal) too, so the original's files keep working.</summary>
    public static IReadOnlyDictionary<string, LogLevel> LogLevels { get; } =
        new Dictionary<string, LogLevel>(StringComparer.OrdinalIgnoreCase)
        {
            ["trace"] = LogLevel.Trace,
            ["debug"] = LogLevel.Debug,
            ["info"] = LogLevel.Information,
            ["information"] = LogLevel.Information,
            ["warn"] = LogLevel.Warning,
            ["warning"] = LogLevel.Warning,
            ["error"] = LogLevel.Error,
            ["critical"] = LogLevel.Critical,
            ["fatal"] = LogLevel.Critical,
            ["none"] = LogLevel.None,
        };

    public static IReadOnlyDictionary<string, Interception.InterceptorFailurePolicy> FailurePolicies { get; } =
        new Dictionary<string, Interception.InterceptorFailurePolicy>(StringComparer.OrdinalIgnoreCase)
        {
            ["refuse"] = Interception.InterceptorFailurePolicy.Refuse,
            ["pass"] = Interception.InterceptorFailurePolicy.PassThrough,
        };

    public static IReadOnlyDictionary<string, LogRotation> LogRotations { get; } =
        new Dictionary<string, LogRotation>(StringComparer.OrdinalIgnoreCase)
        {
            ["size"] = LogRotation.Size,
            ["daily"] = LogRotation.Daily,
        };

    public static IReadOnlyDictionary<string, ListenTlsMode> ListenTlsModes { get; } =
        new Dictionary<string, ListenTlsMode>(StringComparer.OrdinalIgnoreCase)
        {
            ["disable"] = ListenTlsMode.Disable,
            ["allow"] = ListenTlsMode.Allow,
            ["require"] = ListenTlsMode.Require,
        };

    /// <summary>The <c>listen.tls.min-version</c> values, as PostgreSQL's ssl_min_protocol_version writes them without <c>TLSv</c>.</summary>
    public static IReadOnlyDictionary<string, TlsMinVersion> TlsMinVersions { get; } =
        new Dictionary<string, TlsMinVersion>(StringComparer.Ordinal)
        {
            ["1.2"] = TlsMinVersion.Tls12,
            ["1.3"] = TlsMinVersion.Tls13,
        };

    /// <summary>libpq's sslmode names, except allow, which tries plain text first and has no use in front of a proxy.</summary>
    public static IReadOnlyDictionary<string, UpstreamTlsMode> UpstreamTlsModes { get; } =
        new Dictionary<string, UpstreamTlsMode>(StringComparer.OrdinalIgnoreCase)
        {
            ["disable"] = UpstreamTlsMode.Disable,
            ["prefer"] = UpstreamTlsMode.Prefer,
            ["require"] = UpstreamTlsMode.Require,
            ["verify-ca"] = UpstreamTlsMode.VerifyCa,
            ["verify-full"] = UpstreamTlsMode.VerifyFull,
        };

    private static readonly Dictionary<string, long> SizeUnits = new(StringComparer.OrdinalIgnoreCase)
    {
        [""] = 1,
        ["B"] = 1,
        ["kB"] = Kilobyte,
        ["MB"] = Megabyte,
        ["GB"] = Gigabyte,
    };

    private static readonly Dictionary<string, long> DurationUnitsInMilliseconds = new(StringComparer.OrdinalIgnoreCase)
    {
        [""] = 1000,
        ["ms"] = 1,
        ["s"] = 1000,
        ["m"] = 60 * 1000,
        ["h"] = 60 * 60 * 1000,
    };

    [GeneratedRegex(@"^\s*(?<number>[0-9]+)\s*(?<unit>[a-z]*)\s*$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SizePattern();

    [GeneratedRegex(@"^\s*(?<number>[0-9]+(\.[0-9]+)?)\s*(?<unit>[a-z]*)\s*$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex DurationPattern();

    /// <summary>Bytes from <c>1048576</c>, <c>512kB</c>, <c>100 MB</c>, <c>1GB</c> (binary multiples, case-insensitive).</summary>
    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        var match = SizePattern().Match(text);
        if (!match.Success
            || !SizeUnits.TryGetValue(match.Groups["unit"].Value, out var multiplier)
            || !long.TryParse(match.Groups["number"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }

        try
        {
            bytes = checked(number * multiplier);
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    /// <summary>A duration from <c>30</c> (seconds), <c>500ms</c>, <c>10s</c>, <c>1.5s</c>, <c>2m</c>, <c>1h</c>.</summary>
    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        var match = DurationPattern().Match(text);
        if (!match.Success
            || !DurationUnitsInMilliseconds.TryGetValue(match.Groups["unit"].Value, out var millisecondsPerUnit)
            || !decimal.TryParse(match.Groups["number"].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }

        try
        {
            var milliseconds = number * millisecondsPerUnit;
            if (milliseconds > (decimal)TimeSpan.MaxValue.TotalMilliseconds)
            {
                return false;
            }

            duration = TimeSpan.FromTicks((long)(milliseconds * TimeSpan.TicksPerMillisecond));
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    /// <summary>A duration the way a user would write it: <c>1h</c>, <c>2m</c>, <c>10s</c>, or milliseconds.</summary>
    public static string FormatDuration(TimeSpan duration) => duration switch
    {
        _ when duration.Ticks % TimeSpan.TicksPerHour == 0 => $"{duration.Ticks / TimeSpan.TicksPerHour}h",
        _ when duration.Ticks % TimeSpan.TicksPerMinute == 0 => $"{duration.Ticks / TimeSpan.TicksPerMinute}m",
        _ when duration.Ticks % TimeSpan.TicksPerSecond == 0 => $"{duration.Ticks / TimeSpan.TicksPerSecond}s",
        _ => $"{duration.TotalMilliseconds:0.###}ms",
    };

    /// <summary>A size the way a user would write it: <c>1 kB</c>, <c>100 MB</c>, or bytes when not a whole unit.</summary>
    public static string FormatSize(long bytes) => bytes switch
    {
        > 0 when bytes % Gigabyte == 0 => $"{bytes / Gigabyte} GB",
        > 0 when bytes % Megabyte == 0 => $"{bytes / Megabyte} MB",
        > 0 when bytes % Kilobyte == 0 => $"{bytes / Kilobyte} kB",
        _ => $"{bytes} B",
    };
}
