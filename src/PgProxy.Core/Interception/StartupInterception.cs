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
        var runner = new InterceptorRunner<IStartupInterceptor, StartupRequest, StartupDecision>(InterceptorKinds.Connect, context);
        foreach (InterceptorEntry<IStartupInterceptor> interceptor in interceptors.Connects)
        {
            StartupDecision decision = await runner.RunAsync(interceptor, request, cancellationToken).ConfigureAwait(false);
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
}
