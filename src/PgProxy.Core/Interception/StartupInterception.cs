using PgProxy.Abstractions;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Interception;

/// <summary>The start-up packet to send upstream, or the FATAL error to refuse the client with.</summary>
internal readonly record struct StartupOutcome(byte[] Packet, ProtocolError? Refusal);

/// <summary>Runs the start-up interceptors of an instance, in order, before the upstream connection is made.</summary>
internal static class StartupInterception
{
    public static async Task<StartupOutcome> RunAsync(InstanceInterceptors interceptors, StartupPacket startup, SessionContext context, CancellationToken cancellationToken)
    {
        if (interceptors.Connects.Length == 0)
        {
            return new StartupOutcome(startup.RawBytes, null);
        }

        var request = new StartupRequest(startup.Parameters);
        foreach (NamedInterceptor<IStartupInterceptor> interceptor in interceptors.Connects)
        {
            StartupDecision decision = await InvokeAsync(interceptors, interceptor, request, context, cancellationToken).ConfigureAwait(false);
            if (decision.IsRefusal)
            {
                InterceptLog.StartupRefused(context.Logger, context.SessionId, interceptor.Name, decision.RefusalSqlState!, decision.RefusalMessage!);
                return new StartupOutcome(startup.RawBytes, new ProtocolError(decision.RefusalSqlState!, decision.RefusalMessage!));
            }
        }

        if (request.Parameters.SequenceEqual(startup.Parameters))
        {
            return new StartupOutcome(startup.RawBytes, null);
        }

        if (string.IsNullOrEmpty(request["user"]))
        {
            return new StartupOutcome(startup.RawBytes, new ProtocolError(SqlStates.InvalidAuthorizationSpecification, "no PostgreSQL user name specified in startup packet"));
        }

        context.SetStartupParameters(request.Parameters);
        string names = string.Join(", ", interceptors.Connects.Select(c => c.Name));
        string parameters = string.Join(" ", request.Parameters.Select(p => $"{p.Key}={p.Value}"));
        InterceptLog.StartupChanged(context.Logger, context.SessionId, names, parameters);
        return new StartupOutcome(StartupPacketWriter.Build(startup.VersionCode, request.Parameters), null);
    }

    private static async Task<StartupDecision> InvokeAsync(
        InstanceInterceptors interceptors,
        NamedInterceptor<IStartupInterceptor> interceptor,
        StartupRequest request,
        SessionContext context,
        CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(interceptors.Timeout);
        try
        {
            return await interceptor.Interceptor.InterceptStartupAsync(request, context, timeout.Token).AsTask().WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (RefusedException e)
        {
            return StartupDecision.Refuse(e.SqlState, e.Message);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            Exception reason = interceptors.FailureReason(e);
            if (interceptors.FailurePolicy == InterceptorFailurePolicy.PassThrough)
            {
                InterceptLog.Failed(context.Logger, context.SessionId, interceptor.Name, "the start-up goes on unchanged", reason);
                return StartupDecision.Continue;
            }

            InterceptLog.Failed(context.Logger, context.SessionId, interceptor.Name, "the connection is refused with XX000", reason);
            return StartupDecision.Refuse(SqlStates.InternalError, InstanceInterceptors.FailureMessage(interceptor.Name, reason));
        }
    }
}
