// A class-based response interceptor: masks the value of every column named "email", in the simple protocol and in
// the extended one (prepared statements included). Configured as {plugin: mask_email, function: mask_email} under
// intercept.responses; PgProxy finds the class MaskEmail by PascalCase. It asks for DataRow only, so no other message
// is decoded. Values in binary format that are not text (an int4 named email, say) are left alone.

public sealed class MaskEmail : IResponseInterceptor
{
    public ResponseKinds Kinds => ResponseKinds.DataRow;

    public ValueTask InterceptResponseAsync(ResponseMessage message, ISessionContext session, CancellationToken cancellationToken)
    {
        for (int i = 0; i < message.Columns.Count; i++)
        {
            ResponseColumn column = message.Columns[i];
            if (column.Name == "email" && column.IsText && message.GetValue(i) is not null)
            {
                message.SetText(i, "***");
            }
        }

        return ValueTask.CompletedTask;
    }
}
