using System.Buffers.Binary;
using PgProxy.TestSupport;

namespace PgProxy.Protocol.Tests.Fuzzing;

/// <summary>
/// The CI replay of the fuzz targets: every seed, every file of the fuzzer's corpus under fuzz/corpus, and a fixed
/// number of mutations of them (bit flips, bytes set, truncations, inserted and repeated slices, lengths overwritten
/// with edge values, seeds joined), drawn from a fixed random seed so a failure reproduces. No decoder may throw.
/// </summary>
public sealed class FuzzReplayTests
{
    /// <summary>
    /// Per target: 20,000 in CI (about a second for all five). PGPROXY_FUZZ_MUTATIONS raises it for a longer local run
    /// (docs/reliability.md has one); the same fixed seed, so the first 20,000 are always the CI's.
    /// </summary>
    private static readonly int Mutations =
        int.TryParse(Environment.GetEnvironmentVariable("PGPROXY_FUZZ_MUTATIONS"), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int configured) ? configured : 20_000;

    private static readonly int[] EdgeLengths = [0, 1, 3, 4, 5, -1, int.MinValue, int.MaxValue, 8, 16, 4096, 65536];

    public static TheoryData<string> Targets => [.. FuzzTargets.All.Keys];

    [Fact]
    public void An_unterminated_SASL_mechanism_list_is_refused_as_invalid_data()
    {
        // Found by this replay (input 5A49 of target backend): it threw FormatException, which no caller caught.
        Assert.Throws<InvalidDataException>(() => PgProxy.Protocol.Authentication.SaslMessages.ReadMechanisms("I"u8));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void No_decoder_throws_on_the_corpus_or_its_mutations(string target)
    {
        Action<byte[]> run = FuzzTargets.All[target];
        List<byte[]> inputs = [.. FuzzSeeds.For(target), .. CorpusFiles(target)];
        var random = new Random(20261203 + target.Length);
        byte[]? failing = null;
        Exception? failure = null;
        foreach (byte[] input in inputs.Concat(Enumerable.Range(0, Mutations).Select(_ => Mutate(inputs, random))))
        {
            try
            {
                run(input);
            }
            catch (Exception e)
            {
                (failing, failure) = (input, e);
                break;
            }
        }

        Assert.True(failure is null, $"{target} threw on {Convert.ToHexString(failing ?? [])}: {failure}");
    }

    private static IEnumerable<byte[]> CorpusFiles(string target)
    {
        string directory = Path.Combine(PgProxy.TestSupport.RepositoryRoot.Path, "fuzz", "corpus", target);
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
                4 when data.Length >= 4 => Length(data, random),
                5 when data.Length > 1 => ByteMutations.Repeat(data, random),
                _ => [.. data, .. inputs[random.Next(inputs.Count)]],
            };
        }

        return data;
    }

    private static byte[] Length(byte[] data, Random random)
    {
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(random.Next(data.Length - 3)), EdgeLengths[random.Next(EdgeLengths.Length)]);
        return data;
    }
}
