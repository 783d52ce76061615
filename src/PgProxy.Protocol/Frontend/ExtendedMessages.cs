using System.Buffers;
using System.Text;

namespace PgProxy.Protocol.Frontend;

/// <summary>
/// Reads the names in the extended-protocol messages that decide which columns an Execute returns: Parse, Bind,
/// Describe, Execute and Close. Names are decoded as Latin-1, byte for byte: they are only compared with each other.
/// </summary>
public static class ExtendedMessages
{
    /// <summary>Decodes the statement name at the start of a Parse body.</summary>
    public static bool TryReadParseName(in ReadOnlySequence<byte> body, out string statement)
    {
        var reader = new SequenceReader<byte>(body);
        return QueryMessages.TryReadCString(ref reader, Encoding.Latin1, out statement);
    }

    /// <summary>Decodes a Bind body's portal and statement names and its result-column format codes.</summary>
    public static bool TryReadBind(in ReadOnlySequence<byte> body, out string portal, out string statement, out short[] resultFormats) =>
        TryReadBind(body, out portal, out statement, out _, out resultFormats);

    /// <summary>Decodes a Bind body's portal and statement names, how many parameter values it carries, and its result-column format codes.</summary>
    public static bool TryReadBind(in ReadOnlySequence<byte> body, out string portal, out string statement, out int parameterCount, out short[] resultFormats)
    {
        parameterCount = 0;
        var reader = new SequenceReader<byte>(body);
        statement = string.Empty;
        resultFormats = [];
        if (!QueryMessages.TryReadCString(ref reader, Encoding.Latin1, out portal)
            || !QueryMessages.TryReadCString(ref reader, Encoding.Latin1, out statement)
            || !reader.TryReadBigEndian(out short parameterFormats)
            || parameterFormats < 0
            || reader.Remaining < parameterFormats * 2L)
        {
            return false;
        }

        reader.Advance(parameterFormats * 2L);
        if (!reader.TryReadBigEndian(out short parameters) || parameters < 0)
        {
            return false;
        }

        parameterCount = parameters;

        for (int i = 0; i < parameters; i++)
        {
            if (!reader.TryReadBigEndian(out int length) || length < -1 || reader.Remaining < Math.Max(length, 0))
            {
                return false;
            }

            reader.Advance(Math.Max(length, 0));
        }

        if (!reader.TryReadBigEndian(out short count) || count < 0 || reader.Remaining != count * 2L)
        {
            return false;
        }

        var formats = new short[count];
        for (int i = 0; i < count; i++)
        {
            reader.TryReadBigEndian(out formats[i]);
        }

        resultFormats = formats;
        return true;
    }

    /// <summary>Decodes a Describe or Close body: 'S' (statement) or 'P' (portal), then the name.</summary>
    public static bool TryReadTarget(in ReadOnlySequence<byte> body, out byte target, out string name)
    {
        var reader = new SequenceReader<byte>(body);
        name = string.Empty;
        return reader.TryRead(out target) && target is (byte)'S' or (byte)'P' && QueryMessages.TryReadCString(ref reader, Encoding.Latin1, out name);
    }

    /// <summary>Decodes the portal name of an Execute body.</summary>
    public static bool TryReadExecute(in ReadOnlySequence<byte> body, out string portal)
    {
        var reader = new SequenceReader<byte>(body);
        return QueryMessages.TryReadCString(ref reader, Encoding.Latin1, out portal);
    }
}
