using System.Collections.Immutable;
using PgProxy.Core.Relay;
using PgProxy.Core.Rules;
using PgProxy.Core.Server;
using PgProxy.Core.Statistics;

namespace PgProxy.Core.Interception;

/// <summary>A kind of frame handler, in the order a pipeline runs them.</summary>
internal enum FrameStage
{
    /// <summary>To the server: the instance's rules in force now, on every Query and Parse, before any plugin.</summary>
    Rules,

    /// <summary>From the server: the responses to the proxy's own metadata queries, and refusals made to look like the server's.</summary>
    Diversion,

    /// <summary>To the server: the query interceptors on every Query and Parse.</summary>
    QueryInterceptors,

    /// <summary>From the server: the response interceptors on the message kinds they asked for.</summary>
    ResponseInterceptors,

    /// <summary>To the server, last: the masks' checks of each Query and Parse (computations, COPY) and their catalog.</summary>
    MaskGuard,

    /// <summary>From the server, after the diversion: the masks on DataRows.</summary>
    Masks,
}

/// <summary>
/// The ordered frame handlers of an instance, one list per direction, decided once per configuration snapshot and
/// frozen; each session instantiates them for its two pumps. Rules and statistics join here as further stages, so the
/// pump never changes for them. An instance that intercepts nothing has empty lists: its pumps only scan headers.
/// </summary>
internal sealed class FramePipeline
{
    private FramePipeline(ImmutableArray<FrameStage> toServer, ImmutableArray<FrameStage> toClient, bool tracksStatements)
    {
        ToServer = toServer;
        ToClient = toClient;
        TracksStatements = tracksStatements;
    }

    /// <summary>Handlers of the frames the client sends, in order.</summary>
    public ImmutableArray<FrameStage> ToServer { get; }

    /// <summary>Handlers of the frames the server sends, in order.</summary>
    public ImmutableArray<FrameStage> ToClient { get; }

    /// <summary>Whether sessions keep the server's statements and portals (the columns of DataRows are needed).</summary>
    public bool TracksStatements { get; }

    /// <summary>Whether a session needs a <see cref="SessionContext"/> for its handlers.</summary>
    public bool IsEmpty => ToServer.IsEmpty && ToClient.IsEmpty;

    /// <param name="interceptors">The instance's interceptors in this snapshot.</param>
    /// <param name="rulesPossible">
    /// Whether rules can run (libpg_query is there). Then every session has the rules' and masks' stages, even while the
    /// instance has neither, so that what a reload adds reaches open sessions; with none they take no frame and cost a check.
    /// </param>
    /// <param name="hasMasks">
    /// Whether the instance has masks in this snapshot: its sessions then track statements, so that a statement
    /// described once is masked on every execution. (A session that began without masks masks what it can see.)
    /// </param>
    public static FramePipeline For(InstanceInterceptors interceptors, bool rulesPossible = false, bool hasMasks = false)
    {
        ImmutableArray<FrameStage>.Builder toServer = ImmutableArray.CreateBuilder<FrameStage>();
        ImmutableArray<FrameStage>.Builder toClient = ImmutableArray.CreateBuilder<FrameStage>();
        if (rulesPossible)
        {
            toServer.Add(FrameStage.Rules);
        }

        if (interceptors.InterceptsQueries)
        {
            toServer.Add(FrameStage.QueryInterceptors);
        }

        if (rulesPossible)
        {
            toServer.Add(FrameStage.MaskGuard);
        }

        if (rulesPossible || interceptors.InterceptsQueries || interceptors.InterceptsResponses)
        {
            // Metadata queries and refusals come from rules and query interceptors; the diversion runs first so that
            // the response interceptors after it see only what the client will see.
            toClient.Add(FrameStage.Diversion);
        }

        if (rulesPossible)
        {
            toClient.Add(FrameStage.Masks);
        }

        if (interceptors.InterceptsResponses)
        {
            toClient.Add(FrameStage.ResponseInterceptors);
        }

        return new FramePipeline(toServer.ToImmutable(), toClient.ToImmutable(), ResponseInterception.NeedsStatements(interceptors) || (rulesPossible && hasMasks));
    }

    /// <summary>Creates one session's handlers, in the pipeline's order.</summary>
    public SessionHandlers Create(ServerProtocolState state, SessionContext context, InstanceInterceptors interceptors, LiveRules rules, StatementTimer? timer = null)
    {
        var diversion = new ServerResponseHandler(state, context);
        context.Responses = diversion;
        var toServer = new IFrameHandler[ToServer.Length];
        for (int i = 0; i < toServer.Length; i++)
        {
            toServer[i] = ToServer[i] switch
            {
                FrameStage.Rules => new RuleHandler(rules, state, context, diversion, timer),
                FrameStage.QueryInterceptors => new ClientQueryHandler(state, context, diversion, interceptors, timer),
                FrameStage.MaskGuard => new MaskGuardHandler(rules, state, context, diversion, timer),
                FrameStage stage => throw new InvalidOperationException($"{stage} handles frames from the server"),
            };
        }

        var toClient = new IFrameHandler[ToClient.Length];
        for (int i = 0; i < toClient.Length; i++)
        {
            toClient[i] = ToClient[i] switch
            {
                FrameStage.Diversion => diversion,
                FrameStage.ResponseInterceptors => new ResponseInterception(context, interceptors, state.Statements),
                FrameStage.Masks => new MaskHandler(rules, context, state),
                FrameStage stage => throw new InvalidOperationException($"{stage} handles frames from the client"),
            };
        }

        return new SessionHandlers(toServer, toClient, diversion);
    }
}

/// <summary>One session's frame handlers; <see cref="Diversion"/> is abandoned when the session ends.</summary>
internal sealed record SessionHandlers(IReadOnlyList<IFrameHandler> ToServer, IReadOnlyList<IFrameHandler> ToClient, ServerResponseHandler Diversion);
