using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Frontend;
using PgProxy.Protocol.Startup;

namespace PgProxy.Protocol.Tests.Fuzzing;

/// <summary>
/// Seed inputs per target: the messages of real sessions (psql's and Npgsql's start-up, a simple query, an extended
/// query, a result, an error, SCRAM as RFC 7677 shows it), built with PgProxy's own writers so they are valid.
/// fuzz/make-corpus writes the same seeds as files for the fuzzer.
/// </summary>
public static class FuzzSeeds
{
    public static IReadOnlyList<byte[]> For(string target) => target switch
    {
        "framing" => [Concat(Query(), Parse(), Bind(), Execute(), Sync()), Concat(Result()), Concat(Error(), Ready())],
        "startup" =>
        [
            StartupPacketWriter.Build(StartupCodes.Protocol30, [new("user", "app"), new("database", "shop"), new("application_name", "psql"), new("client_encoding", "UTF8")]),
            StartupPacketWriter.Build(StartupCodes.Protocol32, [new("user", "postgres"), new("options", "-c search_path=x")]),
            [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f],
            [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30],
            StartupPacketWriter.BuildCancelRequest(1234, [1, 2, 3, 4]),
        ],
        "frontend" => [.. new[] { Query(), Parse(), Bind(), Execute(), Password() }.Select(Unframed)],
        "backend" => [.. new[] { Error(), Ready(), ParameterStatus(), BackendKeyData(), Result(), CommandComplete(), Sasl() }.Select(Unframed)],
        "scram" =>
        [
            Encoding.UTF8.GetBytes("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"),
            Encoding.UTF8.GetBytes("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            Encoding.UTF8.GetBytes("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
            Encoding.UTF8.GetBytes("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="),
        ],
        _ => throw new ArgumentOutOfRangeException(nameof(target), target, "no such fuzz target"),
    };

    private static byte[] Query() => Written(w => QueryMessages.WriteQuery(w, Encoding.UTF8, "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"));

    private static byte[] Parse() => Written(w => QueryMessages.WriteParse(w, Encoding.UTF8, "s1", "SELECT $1::int + $2", [23, 23]));

    private static byte[] Bind() => Written(w => QueryMessages.WriteBindUnnamed(w, Encoding.UTF8, ["1", null]));

    private static byte[] Execute() => Written(QueryMessages.WriteExecuteUnnamed);

    private static byte[] Sync() => [(byte)'S', 0, 0, 0, 4];

    private static byte[] Password() => Message('p', Encoding.UTF8.GetBytes("md5a3556571e93b0d20722ba62be61e8c2d\0"));

    private static byte[] Error() => ErrorResponseWriter.Build(ErrorSeverity.Error, "42P01", "relation \"missing\" does not exist");

    private static byte[] Ready() => [(byte)'Z', 0, 0, 0, 5, (byte)'I'];

    private static byte[] ParameterStatus() => Message('S', Encoding.UTF8.GetBytes("client_encoding\0UTF8\0"));

    private static byte[] BackendKeyData() => Message('K', [0, 0, 0x30, 0x39, 1, 2, 3, 4]);

    private static byte[] CommandComplete() => Message('C', Encoding.UTF8.GetBytes("SELECT 1\0"));

    private static byte[] Sasl() => Message('R', [0, 0, 0, 10, .. Encoding.UTF8.GetBytes("SCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0\0")]);

    private static byte[] Result() => Written(w => ResultSetWriter.WriteText(w, Encoding.UTF8, ["id", "email"], [["1", "a@example.com"], ["2", null]]));

    private static byte[] Message(char code, byte[] body)
    {
        byte[] message = new byte[body.Length + 5];
        message[0] = (byte)code;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), body.Length + 4);
        body.CopyTo(message.AsSpan(5));
        return message;
    }

    /// <summary>The type byte, then the body without the length: the shape the frontend and backend targets take.</summary>
    private static byte[] Unframed(byte[] message) => [message[0], .. message.AsSpan(5)];

    private static byte[] Concat(params byte[][] messages) => [.. messages.SelectMany(m => m)];

    private static byte[] Written(Action<IBufferWriter<byte>> write)
    {
        var output = new ArrayBufferWriter<byte>();
        write(output);
        return output.WrittenSpan.ToArray();
    }
}
