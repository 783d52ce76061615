namespace PgProxy.TestSupport;

/// <summary>
/// The byte-level mutations the fuzz replays (Protocol and Sql) share, each drawing from the caller's seeded
/// <see cref="Random"/> in a fixed order, so that a replay's inputs stay the same from run to run.
/// </summary>
internal static class ByteMutations
{
    public static byte[] FlipBit(byte[] data, Random random)
    {
        data[random.Next(data.Length)] ^= (byte)(1 << random.Next(8));
        return data;
    }

    public static byte[] SetByte(byte[] data, Random random)
    {
        data[random.Next(data.Length)] = (byte)random.Next(256);
        return data;
    }

    /// <summary>One to eight random bytes.</summary>
    public static byte[] RandomBytes(Random random)
    {
        byte[] extra = new byte[1 + random.Next(8)];
        random.NextBytes(extra);
        return extra;
    }

    public static byte[] Insert(byte[] data, byte[] extra, Random random)
    {
        int at = random.Next(data.Length + 1);
        return [.. data.AsSpan(0, at), .. extra, .. data.AsSpan(at)];
    }

    /// <summary>A slice of up to 16 bytes appended again.</summary>
    public static byte[] Repeat(byte[] data, Random random)
    {
        int start = random.Next(data.Length);
        int length = 1 + random.Next(Math.Min(16, data.Length - start));
        return [.. data, .. data.AsSpan(start, length)];
    }
}
