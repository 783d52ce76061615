using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Rules;

namespace PgProxy.Core.Masks;

/// <summary>
/// One mask of a <see cref="MaskSet"/>, ready to run: its configuration, the mode it runs in (log-only when
/// <c>settings.rules-mode</c> says so), its counters, and the function that rewrites a value. Immutable but for the counters.
/// </summary>
public sealed class Mask
{
    internal Mask(MaskConfig config, RuleMode settingsMode, int index)
    {
        Config = config;
        Index = index;
        Mode = settingsMode == RuleMode.LogOnly ? RuleMode.LogOnly : config.Mode;
        DisplayName = $"mask \"{config.Name}\"";
    }

    public string Name => Config.Name;

    public MaskConfig Config { get; }

    /// <summary>The mode the mask runs in: its own, or log-only when <c>settings.rules-mode</c> is log-only.</summary>
    public RuleMode Mode { get; }

    /// <summary>
    /// Matched: result sets with a column this mask covers, and statements its <c>computed</c> or <c>copy</c> checks caught,
    /// in either mode. Applied: result sets it masked (enforcing). Log-only hits: result sets and statements a log-only mask
    /// let through as they were. Refusals: statements and result sets it refused. Regex timeouts: values a <c>regex</c> mask
    /// ran past <c>settings.rule-timeout</c> on (each became NULL, so that nothing unmasked leaves).
    /// </summary>
    public RuleCounters Counters { get; } = new();

    internal int Index { get; }

    internal bool IsLogOnly => Mode == RuleMode.LogOnly;

    /// <summary>The name as logs and refusals show it: <c>mask "NAME"</c>.</summary>
    internal string DisplayName { get; }

    /// <summary>Whether the session is exempt (<c>unless</c>): every key given holds for it.</summary>
    /// <exception cref="RegexMatchTimeoutException">A <c>/pattern/</c> ran past the rule timeout.</exception>
    internal bool Exempts(in RuleSubject subject)
    {
        MaskExemption unless = Config.Unless;
        return !unless.IsEmpty
            && Rule.AnyName(unless.Users, subject.User)
            && Rule.AnyName(unless.Databases, subject.Database)
            && Rule.AnyName(unless.ApplicationNames, subject.ApplicationName)
            && Rule.InNetworks(unless.Clients, subject.Client);
    }

    /// <summary>Whether the function keeps a value of a type of this category (pg_type.typcategory) in both formats.</summary>
    internal bool KeepsTypeCategory(char category) => Config.With.KeepsEveryType || category == 'S';

    /// <summary>
    /// The masked value of a non-NULL text value; null for SQL NULL (the <c>null</c> function, or a <c>regex</c> that ran
    /// past its timeout, counted).
    /// </summary>
    internal string? Apply(string value)
    {
        MaskFunction function = Config.With;
        switch (function.Kind)
        {
            case MaskFunctionKind.Null:
                return null;
            case MaskFunctionKind.Hash:
                return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));
            case MaskFunctionKind.Email:
                return MaskEmail(value);
            case MaskFunctionKind.Constant:
                return function.Constant!;
            case MaskFunctionKind.KeepLast:
                return KeepLast(value, function.KeepLast);
            default:
                try
                {
                    return function.Pattern!.Replace(value, function.Replacement!);
                }
                catch (RegexMatchTimeoutException)
                {
                    Counters.CountRegexTimeout();
                    return null;
                }
        }
    }

    /// <summary>
    /// Writes the masked value of a non-NULL value, given as its bytes in <paramref name="encoding"/>, into
    /// <paramref name="output"/>: what <see cref="Apply"/> makes of its text, encoded back. False (nothing written) when
    /// the value becomes SQL NULL. Only <c>regex</c> builds strings: .NET's Regex.Replace needs one.
    /// </summary>
    /// <exception cref="DecoderFallbackException">The bytes are not text in <paramref name="encoding"/>.</exception>
    internal bool TryWriteMasked(ReadOnlySpan<byte> value, Encoding encoding, MaskedRowBuffer output)
    {
        MaskFunction function = Config.With;
        switch (function.Kind)
        {
            case MaskFunctionKind.Null:
                return false;
            case MaskFunctionKind.Constant:
                output.WriteText(function.Constant, encoding);
                return true;
            case MaskFunctionKind.KeepLast:
                MaskedValueWriter.KeepLast(value, function.KeepLast, encoding, output);
                return true;
            case MaskFunctionKind.Email:
                MaskedValueWriter.Email(value, encoding, output);
                return true;
            case MaskFunctionKind.Hash:
                MaskedValueWriter.Hash(value, encoding, output);
                return true;
            default:
                if (Apply(encoding.GetString(value)) is not { } replaced)
                {
                    return false;
                }

                output.WriteText(replaced, encoding);
                return true;
        }
    }

    /// <summary><c>alice@example.com</c> becomes <c>a***@example.com</c>: the domain stays (it is rarely personal), one letter of the name.</summary>
    internal static string MaskEmail(string value)
    {
        int at = value.LastIndexOf('@');
        if (at <= 0)
        {
            return "***";
        }

        // One text element, not one UTF-16 unit: a name starting with an emoji or a combining sequence stays valid text.
        int first = StringInfo.GetNextTextElementLength(value);
        return first >= at ? string.Concat("***", value.AsSpan(at)) : string.Concat(value.AsSpan(0, first), "***", value.AsSpan(at));
    }

    /// <summary>Every character but the last <paramref name="kept"/> becomes '*'; a value no longer than that is masked whole, or it would pass unmasked.</summary>
    internal static string KeepLast(string value, int kept)
    {
        var elements = StringInfo.ParseCombiningCharacters(value);
        int count = elements.Length;
        if (count <= kept || kept == 0)
        {
            return new string('*', count);
        }

        int keepFrom = elements[count - kept];
        return string.Concat(new string('*', count - kept), value.AsSpan(keepFrom));
    }

    /// <summary>For messages: the mask's name and line.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{DisplayName} (line {Config.Line})");
}
