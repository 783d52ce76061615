using System.Text;
using PgProxy.TestSupport;

namespace PgProxy.Sql.Tests.Fuzzing;

/// <summary>
/// The CI replay of the <c>sql</c> fuzz target: every seed, every file of the fuzzer's corpus under fuzz/corpus/sql,
/// and a fixed number of mutations of them (bit flips, bytes set, truncations, inserted bytes and repeated slices,
/// inserted pieces of SQL syntax such as quotes, dollar quotes, comment marks and parentheses, seeds joined), drawn
/// from a fixed random seed so a failure reproduces. Every boundary gives a result or a SqlParseException.
/// </summary>
public sealed class SqlFuzzReplayTests
{
    /// <summary>
    /// 5,000 in CI (a few seconds: each input goes through the native parser several times). PGPROXY_FUZZ_MUTATIONS
    /// raises it for a longer local run; the same fixed seed, so the first 5,000 are always the CI's.
    /// </summary>
    private static readonly int Mutations =
        int.TryParse(Environment.GetEnvironmentVariable("PGPROXY_FUZZ_MUTATIONS"), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int configured) ? configured : 5_000;

    /// <summary>Pieces of syntax that change how the lexer and the parser read what follows.</summary>
    private static readonly byte[][] Syntax =
    [
        .. new[]
        {
            "'", "\"", "$$", "$a$", "E'\\", "U&'", "U&\"", "/*", "*/", "--", "\n", ";", "(", ")", "[", "]", "::", ",",
            " password ", " PASSWORD '", "\\", "\u00e9", "\U0001F600", "\0", " SELECT ", " FROM ", " WHERE ", " UESCAPE '!'",
        }.Select(Encoding.UTF8.GetBytes),
        [0xFF], [0xC3], [0xED, 0xA0, 0x80],
    ];

    [Fact]
    public void A_long_run_of_plus_and_minus_signs_is_refused_before_the_lexer_reads_it()
    {
        // Found by the sql campaign (fuzz/corpus/sql/regression-sign-run*.sql, 16,000 signs): PostgreSQL's lexer
        // reads a run of signs again for each sign, so every call took seconds and afl reported a hang.
        string[] runs =
        [
            "SELECT " + new string('+', PostgresParser.MaxSignRun + 1) + "1",
            "SELECT 1 " + string.Concat(Enumerable.Repeat("+-", 8_000)) + "1",
        ];
        foreach (string sql in runs)
        {
            // The position is the run's first sign, 1-based as PostgreSQL reports positions.
            Assert.Equal(sql.IndexOfAny(['+', '-']) + 1, Assert.Throws<SqlParseException>(() => PostgresParser.Scan(sql)).CursorPosition);
            Assert.Throws<SqlParseException>(() => PostgresParser.Split(sql));
            Assert.Throws<SqlParseException>(() => PostgresParser.SplitWithScanner(sql));
            Assert.Throws<SqlParseException>(() => PostgresParser.Fingerprint(sql));
            Assert.Throws<SqlParseException>(() => PostgresParser.Normalize(sql));
            Assert.Throws<SqlParseException>(() => PostgresParser.Parse(sql));
        }

        // A text that may carry a password and cannot be read is not shown, as for any lexical error.
        Assert.Equal(PasswordRedaction.Unreadable, PasswordRedaction.Redact("ALTER USER app PASSWORD " + runs[0]));
    }

    [Fact]
    public void Runs_of_signs_up_to_the_limit_and_long_dashed_comments_still_parse()
    {
        _ = PostgresParser.Parse("SELECT " + new string('+', PostgresParser.MaxSignRun) + "1");
        string dashed = "--\n-- " + new string('-', 2_000) + "\n--\nSELECT 1 -" + new string('-', 2_000) + "\n";
        Assert.Single(PostgresParser.Split(dashed));
        Assert.Equal(PostgresParser.Fingerprint("SELECT 1"), PostgresParser.Fingerprint(dashed));
    }

    [Fact]
    public void Every_seed_gives_a_result_or_a_parse_error()
    {
        foreach (byte[] seed in SqlFuzzSeeds.All)
        {
            SqlFuzzTarget.Run(seed);
        }
    }

    [Fact]
    public void No_boundary_throws_anything_else_on_the_corpus_or_its_mutations()
    {
        List<byte[]> inputs = [.. SqlFuzzSeeds.All, .. CorpusFiles()];
        var random = new Random(20261203);
        byte[]? failing = null;
        Exception? failure = null;
        foreach (byte[] input in inputs.Concat(Enumerable.Range(0, Mutations).Select(_ => Mutate(inputs, random))))
        {
            try
            {
                SqlFuzzTarget.Run(input);
            }
            catch (Exception e)
            {
                (failing, failure) = (input, e);
                break;
            }
        }

        Assert.True(failure is null, $"sql threw on {Convert.ToHexString(failing ?? [])}: {failure}");
    }

    private static IEnumerable<byte[]> CorpusFiles()
    {
        string directory = Path.Combine(PgProxy.TestSupport.RepositoryRoot.Path, "fuzz", "corpus", "sql");
        return Directory.Exists(directory) ? Directory.GetFiles(directory).Order(StringComparer.Ordinal).Select(File.ReadAllBytes) : [];
    }

    private static byte[] Mutate(List<byte[]> inputs, Random random)
    {
        byte[] data = [.. inputs[random.Next(inputs.Count)]];
        int steps = 1 + random.Next(4);
        for (int step = 0; step < steps; step++)
        {
            data = random.Next(7) switch
            {
                0 when data.Length > 0 => ByteMutations.FlipBit(data, random),
                1 when data.Length > 0 => ByteMutations.SetByte(data, random),
                2 when data.Length > 0 => data[..random.Next(data.Length)],
                3 => ByteMutations.Insert(data, ByteMutations.RandomBytes(random), random),
                4 or 5 => ByteMutations.Insert(data, Syntax[random.Next(Syntax.Length)], random),
                6 when data.Length > 1 => ByteMutations.Repeat(data, random),
                _ => [.. data, .. inputs[random.Next(inputs.Count)]],
            };
        }

        return data;
    }

}
