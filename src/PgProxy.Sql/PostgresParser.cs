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

    // Queries nest expressions deeply (each level is two protobuf messages): well beyond the default limit of 100.
    private const int RecursionLimit = 2000;

    private static readonly Lazy<string?> AvailabilityProblemValue = new(ProbeLibrary);

    /// <summary>Null when the native parser loads; otherwise what is wrong and which package to install.</summary>
    public static string? AvailabilityProblem => AvailabilityProblemValue.Value;

    /// <summary>True when the native parser library is installed and loads.</summary>
    public static bool IsAvailable => AvailabilityProblem is null;

    /// <summary>Parses one or more statements into libpg_query's typed tree.</summary>
    /// <exception cref="SqlParseException">The query is not valid PostgreSQL SQL.</exception>
    /// <exception cref="SqlParserUnavailableException">libpg_query is not installed.</exception>
    public static PgQuery.ParseResult Parse(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        EnsureAvailable();
        using NativeText text = new(sql);
        PgQueryNative.PgQueryProtobufParseResult result = PgQueryNative.ParseProtobuf(text.Pointer);
        try
        {
            ThrowOnError(result.Error);
            using var stream = new UnmanagedMemoryStream(result.ParseTree.Data, checked((long)result.ParseTree.Length));
            var input = CodedInputStream.CreateWithLimits(stream, int.MaxValue, RecursionLimit);
            return PgQuery.ParseResult.Parser.ParseFrom(input);
        }
        finally
        {
            PgQueryNative.FreeProtobufParseResult(result);
        }
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
            return $"the PostgreSQL parser library libpg_query could not be loaded ({exception.Message.Split('\n')[0].Trim()}); {InstallHint}";
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
