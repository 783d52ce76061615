using Google.Protobuf;
using PgProxy.Sql.Native;
using PgQuery;

namespace PgProxy.Sql.Tests;

/// <summary>Reference implementations through the generated protobuf types, to check the hand-written decoders.</summary>
internal static unsafe class PostgresParserTestHooks
{
    public static ScanResult ScanWithGeneratedTypes(string sql)
    {
        using PostgresParser.NativeText text = new(sql);
        PgQueryNative.PgQueryScanResult result = PgQueryNative.Scan(text.Pointer);
        try
        {
            PostgresParser.ThrowOnError(result.Error);
            return ScanResult.Parser.ParseFrom(new ReadOnlySpan<byte>(result.Tokens.Data, checked((int)result.Tokens.Length)));
        }
        finally
        {
            PgQueryNative.FreeScanResult(result);
        }
    }
}
