using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Benchmarks;

/// <summary>
/// Baseline for query interceptors (the codec the engine uses, PgProxy.Protocol's QueryMessages): decode a Query or a
/// Parse body to text and write the message back unchanged,
/// which is the least an interceptor adds over pass-through (where the frame is forwarded as it arrived). The
/// allocations are the query string (and Parse's names and type array): the price of handing text to an interceptor.
/// </summary>
[MemoryDiagnoser]
public class QueryInterceptionBaselineBenchmarks
{
    private const string BiQuery =
        "SELECT \"orders\".\"region\" AS \"region\", \"orders\".\"category\" AS \"category\", "
        + "SUM(\"orders\".\"sales\") AS \"sum:sales:ok\", COUNT(DISTINCT \"orders\".\"customer_id\") AS \"ctd:customer_id:ok\", "
        + "AVG(\"orders\".\"discount\") AS \"avg:discount:ok\", DATE_TRUNC('month', \"orders\".\"order_date\") AS \"tmn:order_date:ok\" "
        + "FROM \"public\".\"orders\" \"orders\" INNER JOIN \"public\".\"customers\" \"customers\" "
        + "ON (\"orders\".\"customer_id\" = \"customers\".\"customer_id\") "
        + "WHERE ((\"orders\".\"order_date\" >= TIMESTAMP '2024-01-01 00:00:00') AND (\"orders\".\"order_date\" < TIMESTAMP '2025-01-01 00:00:00') "
        + "AND (\"customers\".\"segment\" IN ('Consumer', 'Corporate', 'Home Office')) AND (\"orders\".\"ship_mode\" <> 'Same Day')) "
        + "GROUP BY 1, 2, 6 HAVING (SUM(\"orders\".\"sales\") > 1000) ORDER BY 3 DESC, 1 ASC, 2 ASC LIMIT 500";

    private readonly ArrayBufferWriter<byte> output = new(4096);
    private ReadOnlySequence<byte> queryBody;
    private ReadOnlySequence<byte> parseBody;
    private byte[] queryMessage = null!;
    private byte[] parseMessage = null!;

    /// <summary>pgbench's select (about 55 bytes) or a BI tool's aggregate query (about 1 KB).</summary>
    [Params("pgbench", "bi")]
    public string Text { get; set; } = "pgbench";

    [GlobalSetup]
    public void Setup()
    {
        string sql = Text == "bi" ? BiQuery : Wire.PgbenchSelect;
        var writer = new ArrayBufferWriter<byte>();
        QueryMessages.WriteQuery(writer, Encoding.UTF8, sql.Replace("$1", "48213", StringComparison.Ordinal));
        queryMessage = writer.WrittenSpan.ToArray();
        writer.ResetWrittenCount();
        QueryMessages.WriteParse(writer, Encoding.UTF8, "P0_1", sql, [23u]);
        parseMessage = writer.WrittenSpan.ToArray();
        queryBody = BodyOf(queryMessage);
        parseBody = BodyOf(parseMessage);

        if (!RoundTripQuery().SequenceEqual(queryMessage) || !RoundTripParse().SequenceEqual(parseMessage))
        {
            throw new InvalidOperationException("decode and re-encode changed the message");
        }
    }

    [Benchmark(Description = "Query: decode text + re-encode")]
    public int QueryDecodeEncode() => RoundTripQuery().Length;

    [Benchmark(Description = "Parse: decode + re-encode")]
    public int ParseDecodeEncode() => RoundTripParse().Length;

    [Benchmark(Description = "Query: UTF-8 decode only")]
    public int QueryDecodeOnly() => Encoding.UTF8.GetByteCount(DecodeQuery());

    private ReadOnlySpan<byte> RoundTripQuery()
    {
        output.ResetWrittenCount();
        QueryMessages.WriteQuery(output, Encoding.UTF8, DecodeQuery());
        return output.WrittenSpan;
    }

    private ReadOnlySpan<byte> RoundTripParse()
    {
        output.ResetWrittenCount();
        QueryMessages.TryReadParse(parseBody, Encoding.UTF8, out ParseMessage? parse);
        QueryMessages.WriteParse(output, Encoding.UTF8, parse!.StatementName, parse.Text, parse.ParameterTypes);
        return output.WrittenSpan;
    }

    private string DecodeQuery()
    {
        QueryMessages.TryReadQuery(queryBody, Encoding.UTF8, out string text);
        return text;
    }

    private static ReadOnlySequence<byte> BodyOf(byte[] message)
    {
        var buffer = new ReadOnlySequence<byte>(message);
        if (FrameReader.TryReadFrame(ref buffer, int.MaxValue, out Frame frame) != FrameReadStatus.Complete)
        {
            throw new InvalidOperationException("message does not frame");
        }

        return frame.Body;
    }
}
