using System.Reflection;
using System.Runtime.InteropServices;

namespace PgProxy.Sql.Native;

/// <summary>
/// The C entry points of libpg_query (pg_query.h), as Debian's libpg-query packages ship them. Results are freed by the
/// library's own free functions; nothing here outlives the call that produced it.
/// </summary>
internal static unsafe partial class PgQueryNative
{
    /// <summary>The name given to <see cref="LibraryImportAttribute"/>; resolved to the installed file by <see cref="Resolve"/>.</summary>
    public const string LibraryName = "pg_query";

    /// <summary>The environment variable that names the libpg_query file to load instead of the distribution's.</summary>
    public const string LibraryPathVariable = "PGPROXY_LIBPG_QUERY";

    /// <summary>File names tried in order: the versioned runtime library (package libpg-query1504.0) first, so only the runtime package is needed to run.</summary>
    internal static readonly string[] CandidateFileNames = ["libpg_query.so.1504.0", "libpg_query.so", "libpg_query.dylib", "pg_query"];

    static PgQueryNative() => NativeLibrary.SetDllImportResolver(typeof(PgQueryNative).Assembly, Resolve);

    [StructLayout(LayoutKind.Sequential)]
    public struct PgQueryError
    {
        public byte* Message;
        public byte* FunctionName;
        public byte* FileName;
        public int LineNumber;
        public int CursorPosition;
        public byte* Context;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PgQueryProtobuf
    {
        public nuint Length;
        public byte* Data;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PgQueryProtobufParseResult
    {
        public PgQueryProtobuf ParseTree;
        public byte* StderrBuffer;
        public PgQueryError* Error;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PgQueryScanResult
    {
        public PgQueryProtobuf Tokens;
        public byte* StderrBuffer;
        public PgQueryError* Error;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PgQuerySplitStatement
    {
        public int Location;
        public int Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PgQuerySplitResult
    {
        public PgQuerySplitStatement** Statements;
        public int StatementCount;
        public byte* StderrBuffer;
        public PgQueryError* Error;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PgQueryDeparseResult
    {
        public byte* Query;
        public PgQueryError* Error;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PgQueryFingerprintResult
    {
        public ulong Fingerprint;
        public byte* FingerprintText;
        public byte* StderrBuffer;
        public PgQueryError* Error;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PgQueryNormalizeResult
    {
        public byte* NormalizedQuery;
        public PgQueryError* Error;
    }

    [LibraryImport(LibraryName, EntryPoint = "pg_query_parse_protobuf")]
    public static partial PgQueryProtobufParseResult ParseProtobuf(byte* input);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_free_protobuf_parse_result")]
    public static partial void FreeProtobufParseResult(PgQueryProtobufParseResult result);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_scan")]
    public static partial PgQueryScanResult Scan(byte* input);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_free_scan_result")]
    public static partial void FreeScanResult(PgQueryScanResult result);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_split_with_scanner")]
    public static partial PgQuerySplitResult SplitWithScanner(byte* input);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_split_with_parser")]
    public static partial PgQuerySplitResult SplitWithParser(byte* input);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_free_split_result")]
    public static partial void FreeSplitResult(PgQuerySplitResult result);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_deparse_protobuf")]
    public static partial PgQueryDeparseResult DeparseProtobuf(PgQueryProtobuf parseTree);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_free_deparse_result")]
    public static partial void FreeDeparseResult(PgQueryDeparseResult result);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_fingerprint")]
    public static partial PgQueryFingerprintResult Fingerprint(byte* input);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_free_fingerprint_result")]
    public static partial void FreeFingerprintResult(PgQueryFingerprintResult result);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_normalize")]
    public static partial PgQueryNormalizeResult Normalize(byte* input);

    [LibraryImport(LibraryName, EntryPoint = "pg_query_free_normalize_result")]
    public static partial void FreeNormalizeResult(PgQueryNormalizeResult result);

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (!string.Equals(libraryName, LibraryName, StringComparison.Ordinal))
        {
            return IntPtr.Zero;
        }

        // An operator can point at a libpg_query of their own (built elsewhere, or a newer one); then only that file is tried.
        if (Environment.GetEnvironmentVariable(LibraryPathVariable) is { Length: > 0 } path)
        {
            // Zero would let the runtime fall back to its own search and quietly load the distribution's library.
            return NativeLibrary.TryLoad(path, out IntPtr own) ? own : throw new DllNotFoundException($"{path} cannot be loaded");
        }

        foreach (string candidate in CandidateFileNames)
        {
            if (NativeLibrary.TryLoad(candidate, assembly, searchPath, out IntPtr handle))
            {
                return handle;
            }
        }

        return IntPtr.Zero;
    }
}
