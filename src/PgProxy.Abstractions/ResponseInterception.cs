using System.Text;

namespace PgProxy.Abstractions;

/// <summary>The server messages a response interceptor can ask for. Only the kinds some interceptor asked for are decoded.</summary>
[Flags]
public enum ResponseKinds
{
    /// <summary>No message.</summary>
    None = 0,

    /// <summary>RowDescription ('T'): the columns of the rows that follow. Read-only.</summary>
    RowDescription = 1,

    /// <summary>DataRow ('D'): one row, with the columns it belongs to in both protocols.</summary>
    DataRow = 2,

    /// <summary>CommandComplete ('C'): the command tag, such as <c>SELECT 3</c>.</summary>
    CommandComplete = 4,

    /// <summary>ErrorResponse ('E'): its fields.</summary>
    ErrorResponse = 8,

    /// <summary>NoticeResponse ('N'): its fields.</summary>
    NoticeResponse = 16,

    /// <summary>ParameterStatus ('S'): a server parameter's name and value.</summary>
    ParameterStatus = 32,

    /// <summary>Every kind above.</summary>
    All = RowDescription | DataRow | CommandComplete | ErrorResponse | NoticeResponse | ParameterStatus,
}

/// <summary>One column of a result, as the server described it.</summary>
public sealed class ResponseColumn
{
    /// <summary>Creates a column description.</summary>
    public ResponseColumn(string name, uint tableOid, short columnNumber, uint typeOid, short typeSize, int typeModifier, short formatCode)
    {
        Name = name;
        TableOid = tableOid;
        ColumnNumber = columnNumber;
        TypeOid = typeOid;
        TypeSize = typeSize;
        TypeModifier = typeModifier;
        FormatCode = formatCode;
    }

    /// <summary>The column's name (its alias when the query gave one).</summary>
    public string Name { get; }

    /// <summary>The OID of the table the column comes from, or 0.</summary>
    public uint TableOid { get; }

    /// <summary>The column's attribute number in that table, or 0.</summary>
    public short ColumnNumber { get; }

    /// <summary>The OID of the column's data type (25 = text, 23 = int4, ...).</summary>
    public uint TypeOid { get; }

    /// <summary>The data type's size (negative for variable-width types).</summary>
    public short TypeSize { get; }

    /// <summary>The type modifier.</summary>
    public int TypeModifier { get; }

    /// <summary>The format of the column's values in DataRow: 0 = text, 1 = binary.</summary>
    public short FormatCode { get; }

    /// <summary>
    /// True when the values are text in the client encoding, so <see cref="ResponseMessage.GetText(int)"/> and
    /// <see cref="ResponseMessage.SetText(int, string?)"/> apply: text format, or the binary format of text, varchar,
    /// bpchar and name, which is the same text (clients such as Npgsql ask for binary results).
    /// </summary>
    public bool IsText => FormatCode == 0 || TypeOid is 25 or 1043 or 1042 or 19;

    /// <summary>This column with another format code.</summary>
    public ResponseColumn WithFormat(short formatCode) =>
        formatCode == FormatCode ? this : new ResponseColumn(Name, TableOid, ColumnNumber, TypeOid, TypeSize, TypeModifier, formatCode);
}

/// <summary>
/// A server message decoded for response interceptors. An interceptor reads it and may change it in place: values of a
/// DataRow, the tag of a CommandComplete, fields of an ErrorResponse or NoticeResponse, the value of a ParameterStatus.
/// PgProxy re-encodes the message (lengths recomputed) only when something changed; otherwise the original bytes go on.
/// A message is valid only during the call: do not keep it.
/// </summary>
public sealed class ResponseMessage
{
    private static readonly ResponseColumn[] NoColumns = [];
    private readonly ReadOnlyMemory<byte>?[] values;
    private readonly List<KeyValuePair<char, string>> fields;
    private string? commandTag;
    private string? parameterValue;

    private ResponseMessage(ResponseKinds kind, Encoding encoding, IReadOnlyList<ResponseColumn> columns, ReadOnlyMemory<byte>?[] values, List<KeyValuePair<char, string>> fields)
    {
        Kind = kind;
        Encoding = encoding;
        Columns = columns;
        this.values = values;
        this.fields = fields;
    }

    /// <summary>Which message this is.</summary>
    public ResponseKinds Kind { get; }

    /// <summary>The session's client encoding, in which text values, tags and fields are encoded.</summary>
    public Encoding Encoding { get; }

    /// <summary>
    /// RowDescription: its columns. DataRow: the columns of the row (in the simple protocol from the RowDescription
    /// before it; in the extended one from the Describe of the statement or portal, with the formats asked for in Bind).
    /// Empty when PgProxy does not know them (the client never had the statement or portal described) or for other kinds.
    /// </summary>
    public IReadOnlyList<ResponseColumn> Columns { get; }

    /// <summary>DataRow: the number of values.</summary>
    public int ValueCount => values.Length;

    /// <summary>True once an interceptor has changed something; the message is then re-encoded.</summary>
    public bool IsChanged { get; private set; }

    /// <summary>CommandComplete: the command tag; setting a different tag changes the message.</summary>
    public string? CommandTag
    {
        get => commandTag;
        set
        {
            RequireKind(ResponseKinds.CommandComplete);
            ArgumentNullException.ThrowIfNull(value);
            if (!string.Equals(value, commandTag, StringComparison.Ordinal))
            {
                commandTag = value;
                IsChanged = true;
            }
        }
    }

    /// <summary>ErrorResponse and NoticeResponse: the fields in order, by their one-letter code ('S' severity, 'C' SQLSTATE, 'M' message, ...).</summary>
    public IReadOnlyList<KeyValuePair<char, string>> Fields => fields;

    /// <summary>ParameterStatus: the parameter's name.</summary>
    public string? ParameterName { get; private init; }

    /// <summary>ParameterStatus: the parameter's value; setting a different value changes the message.</summary>
    public string? ParameterValue
    {
        get => parameterValue;
        set
        {
            RequireKind(ResponseKinds.ParameterStatus);
            ArgumentNullException.ThrowIfNull(value);
            if (!string.Equals(value, parameterValue, StringComparison.Ordinal))
            {
                parameterValue = value;
                IsChanged = true;
            }
        }
    }

    /// <summary>A DataRow with its columns (empty when unknown) and raw values (null for SQL NULL).</summary>
    public static ResponseMessage ForDataRow(IReadOnlyList<ResponseColumn> columns, IReadOnlyList<ReadOnlyMemory<byte>?> values, Encoding encoding)
    {
        ArgumentNullException.ThrowIfNull(columns);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(encoding);
        return new(ResponseKinds.DataRow, encoding, columns.Count == values.Count ? columns : NoColumns, [.. values], []);
    }

    /// <summary>A RowDescription with its columns.</summary>
    public static ResponseMessage ForRowDescription(IReadOnlyList<ResponseColumn> columns, Encoding encoding)
    {
        ArgumentNullException.ThrowIfNull(columns);
        ArgumentNullException.ThrowIfNull(encoding);
        return new(ResponseKinds.RowDescription, encoding, columns, [], []);
    }

    /// <summary>A CommandComplete with its tag.</summary>
    public static ResponseMessage ForCommandComplete(string tag, Encoding encoding)
    {
        ArgumentNullException.ThrowIfNull(tag);
        ArgumentNullException.ThrowIfNull(encoding);
        return new(ResponseKinds.CommandComplete, encoding, NoColumns, [], []) { commandTag = tag };
    }

    /// <summary>An ErrorResponse or NoticeResponse with its fields.</summary>
    public static ResponseMessage ForFields(ResponseKinds kind, IEnumerable<KeyValuePair<char, string>> fields, Encoding encoding)
    {
        ArgumentNullException.ThrowIfNull(fields);
        ArgumentNullException.ThrowIfNull(encoding);
        if (kind is not (ResponseKinds.ErrorResponse or ResponseKinds.NoticeResponse))
        {
            throw new ArgumentException("only ErrorResponse and NoticeResponse have fields", nameof(kind));
        }

        return new(kind, encoding, NoColumns, [], [.. fields]);
    }

    /// <summary>A ParameterStatus with its name and value.</summary>
    public static ResponseMessage ForParameterStatus(string name, string value, Encoding encoding)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(encoding);
        return new(ResponseKinds.ParameterStatus, encoding, NoColumns, [], []) { ParameterName = name, parameterValue = value };
    }

    /// <summary>DataRow: the index of the first column named <paramref name="name"/> (ordinal comparison), or -1.</summary>
    public int IndexOf(string name)
    {
        for (int i = 0; i < Columns.Count; i++)
        {
            if (string.Equals(Columns[i].Name, name, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>DataRow: the raw bytes of value <paramref name="index"/>, or null for SQL NULL.</summary>
    public ReadOnlyMemory<byte>? GetValue(int index)
    {
        RequireKind(ResponseKinds.DataRow);
        return values[index];
    }

    /// <summary>DataRow: replaces value <paramref name="index"/> with raw bytes (null for SQL NULL), in the column's format.</summary>
    public void SetValue(int index, ReadOnlyMemory<byte>? value)
    {
        RequireKind(ResponseKinds.DataRow);
        values[index] = value;
        IsChanged = true;
    }

    /// <summary>DataRow: value <paramref name="index"/> decoded in the client encoding, or null for SQL NULL.</summary>
    /// <exception cref="InvalidOperationException">The column's values are binary, not text (see <see cref="ResponseColumn.IsText"/>).</exception>
    public string? GetText(int index)
    {
        RequireText(index);
        return values[index] is { } bytes ? Encoding.GetString(bytes.Span) : null;
    }

    /// <summary>DataRow: replaces value <paramref name="index"/> with <paramref name="text"/> encoded in the client encoding (null for SQL NULL).</summary>
    /// <exception cref="InvalidOperationException">The column's values are binary, not text (see <see cref="ResponseColumn.IsText"/>).</exception>
    public void SetText(int index, string? text)
    {
        RequireText(index);
        if (text is null ? values[index] is null : values[index] is { } old && Encoding.GetString(old.Span) == text)
        {
            return;
        }

        values[index] = text is null ? null : Encoding.GetBytes(text);
        IsChanged = true;
    }

    /// <summary>ErrorResponse or NoticeResponse: the value of field <paramref name="code"/>, or null.</summary>
    public string? GetField(char code)
    {
        foreach (KeyValuePair<char, string> field in fields)
        {
            if (field.Key == code)
            {
                return field.Value;
            }
        }

        return null;
    }

    /// <summary>ErrorResponse or NoticeResponse: sets field <paramref name="code"/> (added at the end when missing); null removes it.</summary>
    public void SetField(char code, string? value)
    {
        if (Kind is not (ResponseKinds.ErrorResponse or ResponseKinds.NoticeResponse))
        {
            throw new InvalidOperationException($"a {Kind} message has no fields");
        }

        int index = fields.FindIndex(field => field.Key == code);
        if (value is null)
        {
            if (index >= 0)
            {
                fields.RemoveAt(index);
                IsChanged = true;
            }

            return;
        }

        if (index >= 0)
        {
            if (!string.Equals(fields[index].Value, value, StringComparison.Ordinal))
            {
                fields[index] = new(code, value);
                IsChanged = true;
            }
        }
        else
        {
            fields.Add(new(code, value));
            IsChanged = true;
        }
    }

    private void RequireKind(ResponseKinds kind)
    {
        if (Kind != kind)
        {
            throw new InvalidOperationException($"a {Kind} message is not a {kind}");
        }
    }

    private void RequireText(int index)
    {
        RequireKind(ResponseKinds.DataRow);
        if (Columns.Count > index && !Columns[index].IsText)
        {
            throw new InvalidOperationException($"column \"{Columns[index].Name}\" has binary values: use GetValue and SetValue");
        }
    }
}

/// <summary>Sees the server messages of the kinds it asks for, in the sessions of the instances it is configured on.</summary>
public interface IResponseInterceptor
{
    /// <summary>The message kinds this interceptor wants; PgProxy decodes only kinds some interceptor wants. Read once, at start-up.</summary>
    ResponseKinds Kinds { get; }

    /// <summary>Looks at one message and may change it in place (see <see cref="ResponseMessage"/>).</summary>
    ValueTask InterceptResponseAsync(ResponseMessage message, ISessionContext session, CancellationToken cancellationToken);
}

/// <summary>
/// On a plugin's static response function, the message kinds it wants. Without it, a response function is called for
/// every kind, which costs a decode of every row: name the kinds you need.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class ResponseKindsAttribute : Attribute
{
    /// <summary>Declares the kinds <paramref name="kinds"/>.</summary>
    public ResponseKindsAttribute(ResponseKinds kinds) => Kinds = kinds;

    /// <summary>The kinds the function wants.</summary>
    public ResponseKinds Kinds { get; }
}
