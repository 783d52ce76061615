namespace PgProxy.Protocol.Backend;

/// <summary>Severity of an ErrorResponse or NoticeResponse, as sent in fields 'S' and 'V'.</summary>
public enum ErrorSeverity
{
    Error,
    Fatal,
}
