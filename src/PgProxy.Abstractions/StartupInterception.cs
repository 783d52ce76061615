namespace PgProxy.Abstractions;

/// <summary>
/// The StartupMessage parameters of a new client connection, before the upstream connection is made. Interceptors may
/// change, add or remove parameters; the order of the ones kept is preserved.
/// </summary>
public sealed class StartupRequest
{
    private readonly List<KeyValuePair<string, string>> parameters;

    /// <summary>Creates a request from the client's parameters.</summary>
    public StartupRequest(IEnumerable<KeyValuePair<string, string>> parameters)
    {
        this.parameters = [.. parameters];
    }

    /// <summary>The parameters in the order they will be sent.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Parameters => parameters;

    /// <summary>A parameter's value, or null.</summary>
    public string? this[string name]
    {
        get => parameters.FirstOrDefault(p => p.Key == name).Value;
        set
        {
            int index = parameters.FindIndex(p => p.Key == name);
            if (value is null)
            {
                if (index >= 0)
                {
                    parameters.RemoveAt(index);
                }
            }
            else if (index >= 0)
            {
                parameters[index] = new(name, value);
            }
            else
            {
                parameters.Add(new(name, value));
            }
        }
    }
}

/// <summary>What a start-up interceptor decided.</summary>
public readonly record struct StartupDecision
{
    private StartupDecision(string? sqlState, string? message)
    {
        RefusalSqlState = sqlState;
        RefusalMessage = message;
    }

    /// <summary>Connect with the parameters as they are now.</summary>
    public static StartupDecision Continue => default;

    /// <summary>The SQLSTATE of the FATAL error, when the connection is refused.</summary>
    public string? RefusalSqlState { get; }

    /// <summary>The message of the FATAL error, when the connection is refused.</summary>
    public string? RefusalMessage { get; }

    /// <summary>True when the connection is refused.</summary>
    public bool IsRefusal => RefusalSqlState is not null;

    /// <summary>Refuse the connection: the client receives a FATAL ErrorResponse (e.g. 28000) and is closed.</summary>
    public static StartupDecision Refuse(string sqlState, string message) => new(SqlStateRules.Validate(sqlState), message ?? throw new ArgumentNullException(nameof(message)));
}

/// <summary>Sees every client start-up of the instances it is configured on, before the upstream connection.</summary>
public interface IStartupInterceptor
{
    /// <summary>Decides whether the connection goes on, after changing its parameters if it likes.</summary>
    ValueTask<StartupDecision> InterceptStartupAsync(StartupRequest startup, ISessionContext session, CancellationToken cancellationToken);
}
