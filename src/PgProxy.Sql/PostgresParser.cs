using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using Google.Protobuf;
using PgProxy.Sql.Native;

namespace PgProxy.Sql;

/// <summary>
/// PostgreSQL's own parser (libpg_query). Thread-safe: the library keeps its memory per thread.
/// Positions in the trees it returns (<c>location</c> fields) are byte offsets into the query's UTF-8 encoding;
/// <see cref="Utf8Offsets"/> turns them into string indexes.
/// </summary>
public static unsafe partial class PostgresParser
{
    /// <summary>What to install when the library is missing (Debian package names).</summary>
    public const string InstallHint = "install Debian's libpg-query1504.0 (or libpg-query-dev): apt-get install libpg-query-dev";

    /// <summary>
    /// The most nesting tokens (see <see cref="ScanResultDecoder.CountNestingTokens"/>) a query may have to be parsed on
    /// the caller's thread; a query with more goes to <see cref="DeepStack"/>. Each such token adds at most two levels
    /// to the serialized tree, and a level costs up to about 4 KB of stack when read back, so this keeps the caller's
    /// share under a megabyte. Real BI queries stay well below it.
    /// </summary>
    internal const int InlineNestingTokens = 96;

    /// <summary>Protobuf nesting allowed on the caller's thread: a safety net above what <see cref="InlineNestingTokens"/> permits.</summary>
    internal const int InlineRecursionLimit = 240;

    /// <summary>
    /// Protobuf nesting allowed on the deep-stack thread: beyond what PostgreSQL's grammar accepts (its parser stack
    /// holds 10,000 entries), so that a query the server would accept is never refused for depth alone.
    /// </summary>
    internal const int DeepRecursionLimit = 40_000;

    /// <summary>Queries this short cannot hold <see cref="InlineNestingTokens"/> tokens, so they are not scanned first.</summary>
    private const int ShallowLength = InlineNestingTokens;

    /// <summary>
    /// The longest run of <c>+</c> and <c>-</c> signs (with no <c>--</c>, which starts a comment) that a query may hold.
    /// PostgreSQL's lexer reads such a run as one operator, then gives back all but its first sign and reads the rest
    /// again, so a run of n signs costs n²/2 character steps: 16,000 of them take seconds on every call, on the
    /// caller's thread. No query a person or a tool writes has hundreds of signs in a row; the check does not know
    /// quotes and comments, so a run this long inside a string constant or a comment is refused too.
    /// </summary>
    internal const int MaxSignRun = 256;

    private static readonly SearchValues<char> OperatorCharacters = SearchValues.Create("+-*/<>=~!@#%^&|`?()[]:\\");

    private static readonly Lazy<string?> AvailabilityProblemValue = new(ProbeLibrary);

    /// <summary>Null when the native parser loads; otherwise what is wrong and which package to install.</summary>
    public static string? AvailabilityProblem => AvailabilityProblemValue.Value;

    /// <summary>True when the native parser library is installed and loads.</summary>
    public static bool IsAvailable => AvailabilityProblem is null;

    /// <summary>Parses one or more statements into libpg_query's typed tree.</summary>
    /// <exception cref="SqlParseException">The query is not valid PostgreSQL SQL, or has more than <see cref="MaxSignRun"/> + and - signs in a row.</exception>
    /// <exception cref="SqlParserUnavailableException">libpg_query is not installed.</exception>
    public static PgQuery.ParseResult Parse(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        EnsureAvailable();
        RefuseLongSignRuns(sql);
        if (!MayNestDeeply(sql))
        {
            try
            {
                return ParseCore(sql, InlineRecursionLimit);
            }
            catch (InvalidProtocolBufferException)
            {
                // Deeper than the token count predicted: read it again where the stack allows.
            }
        }

        return DeepStack.Run(sql, ParseDeep);
    }

    /// <summary>The parse of a query that may nest deeply, on the deep-stack thread.</summary>
    private static PgQuery.ParseResult ParseDeep(string sql)
    {
        try
        {
            return ParseCore(sql, DeepRecursionLimit);
        }
        catch (InvalidProtocolBufferException exception)
        {
            throw new SqlParseException($"The query nests more than {DeepRecursionLimit} levels deep, beyond what PgProxy reads.", exception);
        }
    }

    /// <summary>
    /// <see cref="Parse"/> for callers that must not block, such as interceptors on a session's I/O thread (which
    /// other sessions share): an ordinary query is parsed at once on the caller's thread; one that may nest deeply
    /// is handed to the deep-stack thread and awaited, where <see cref="Parse"/> would block the caller meanwhile.
    /// </summary>
    /// <exception cref="SqlParseException">The query is not valid PostgreSQL SQL, or has more than <see cref="MaxSignRun"/> + and - signs in a row.</exception>
    /// <exception cref="SqlParserUnavailableException">libpg_query is not installed.</exception>
    public static ValueTask<PgQuery.ParseResult> ParseAsync(string sql, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sql);
        EnsureAvailable();
        RefuseLongSignRuns(sql);
        if (!MayNestDeeply(sql))
        {
            try
            {
                return new(ParseCore(sql, InlineRecursionLimit));
            }
            catch (InvalidProtocolBufferException)
            {
                // Deeper than the token count predicted: read it again where the stack allows.
            }
        }

        return new(DeepStack.RunAsync(sql, ParseDeep).WaitAsync(cancellationToken));
    }

    private static PgQuery.ParseResult ParseCore(string sql, int recursionLimit)
    {
        using NativeText text = new(sql);
        PgQueryNative.PgQueryProtobufParseResult result = PgQueryNative.ParseProtobuf(text.Pointer);
        try
        {
            ThrowOnError(result.Error);
            using var stream = new UnmanagedMemoryStream(result.ParseTree.Data, checked((long)result.ParseTree.Length));
            var input = CodedInputStream.CreateWithLimits(stream, int.MaxValue, recursionLimit);
            return PgQuery.ParseResult.Parser.ParseFrom(input);
        }
        finally
        {
            PgQueryNative.FreeProtobufParseResult(result);
        }
    }

    /// <summary>
    /// True when the query may nest too deeply for the caller's stack (see <see cref="DeepStack"/>): it has more than
    /// <see cref="InlineNestingTokens"/> tokens that can open a level. Scanning is iterative, so it is safe at any depth,
    /// and costs a few microseconds against the parse's tens. A lexical error answers false: the parser stops at it.
    /// </summary>
    internal static bool MayNestDeeply(string sql)
    {
        if (sql.Length <= ShallowLength || NestingTokenUpperBound(sql) <= InlineNestingTokens)
        {
            return false;
        }

        using NativeText text = new(sql);
        PgQueryNative.PgQueryScanResult result = PgQueryNative.Scan(text.Pointer);
        try
        {
            return result.Error is null
                && ScanResultDecoder.CountNestingTokens(new ReadOnlySpan<byte>(result.Tokens.Data, checked((int)result.Tokens.Length))) > InlineNestingTokens;
        }
        finally
        {
            PgQueryNative.FreeScanResult(result);
        }
    }

    /// <summary>
    /// An upper bound on the nesting tokens of a query, without lexing it: every keyword starts with an ASCII letter
    /// or underscore that follows no other, and every operator or bracket holds at least one of the characters counted
    /// here (a <c>..</c> counts once). Quoted text is counted as if it were code, which only overcounts. When the bound
    /// is low, as for most queries, the scan in <see cref="MayNestDeeply"/> is not needed.
    /// </summary>
    internal static int NestingTokenUpperBound(string sql)
    {
        int count = 0;
        bool previousIsWordCharacter = false;
        for (int index = 0; index < sql.Length; index++)
        {
            char c = sql[index];
            bool isWordCharacter = char.IsAsciiLetter(c) || c == '_';
            if (isWordCharacter && !previousIsWordCharacter)
            {
                count++;
            }
            else if (OperatorCharacters.Contains(c)
                || (c == '.' && index + 1 < sql.Length && sql[index + 1] == '.'))
            {
                count++;
            }

            previousIsWordCharacter = isWordCharacter;
        }

        return count;
    }

    /// <summary>Throws when the native parser library cannot be loaded, naming the package to install.</summary>
    /// <exception cref="SqlParserUnavailableException">libpg_query is not installed.</exception>
    public static void EnsureAvailable()
    {
        if (AvailabilityProblem is { } problem)
        {
            throw new SqlParserUnavailableException(problem);
        }
    }

    /// <summary>
    /// Refuses a text that holds more than <see cref="MaxSignRun"/> <c>+</c> and <c>-</c> signs in a row (see there),
    /// before libpg_query spends time quadratic in the run's length on it. One pass, vectorized between signs.
    /// </summary>
    /// <exception cref="SqlParseException">The text holds such a run.</exception>
    internal static void RefuseLongSignRuns(string sql)
    {
        ReadOnlySpan<char> text = sql;
        int index = text.IndexOfAny('+', '-');
        while (index >= 0)
        {
            int end = index + 1;
            while (end < text.Length && (text[end] == '+' || (text[end] == '-' && text[end - 1] != '-')))
            {
                end++;
            }

            if (end - index > MaxSignRun)
            {
                throw new SqlParseException(
                    $"The query has {end - index} + and - signs in a row, more than the {MaxSignRun} PgProxy reads: PostgreSQL's lexer takes time that grows with the square of such a run.",
                    index + 1);
            }

            int next = end < text.Length ? text[end..].IndexOfAny('+', '-') : -1;
            index = next < 0 ? -1 : end + next;
        }
    }

    internal static void ThrowOnError(PgQueryNative.PgQueryError* error)
    {
        if (error is not null)
        {
            string message = Marshal.PtrToStringUTF8((IntPtr)error->Message) ?? "syntax error";
            throw new SqlParseException(message, error->CursorPosition);
        }
    }

    private static string? ProbeLibrary()
    {
        try
        {
            using NativeText text = new("SELECT 1");
            PgQueryNative.FreeFingerprintResult(PgQueryNative.Fingerprint(text.Pointer));
            return null;
        }
        catch (Exception exception) when (exception is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            string? own = Environment.GetEnvironmentVariable(PgQueryNative.LibraryPathVariable);
            return string.IsNullOrEmpty(own)
                ? $"the PostgreSQL parser library libpg_query could not be loaded ({exception.Message.Split('\n')[0].Trim()}); {InstallHint}"
                : $"the PostgreSQL parser library libpg_query could not be loaded from {own} (named by {PgQueryNative.LibraryPathVariable}); unset it to use the distribution's, or {InstallHint}";
        }
    }

    /// <summary>A query as a NUL-terminated UTF-8 string in pooled memory, pinned for the length of one native call.</summary>
    internal readonly ref struct NativeText
    {
        private readonly byte[] buffer;
        private readonly GCHandle handle;

        public NativeText(string sql)
        {
            int length = Encoding.UTF8.GetByteCount(sql);
            buffer = ArrayPool<byte>.Shared.Rent(length + 1);
            int written = Encoding.UTF8.GetBytes(sql, buffer);
            buffer[written] = 0;
            handle = GCHandle.Alloc(buffer, GCHandleType.Pinned);
            Pointer = (byte*)handle.AddrOfPinnedObject();
            ByteLength = written;
        }

        public byte* Pointer { get; }

        public int ByteLength { get; }

        public void Dispose()
        {
            handle.Free();
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
