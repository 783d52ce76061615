namespace PgProxy.Core.Hosting;

/// <summary>What a reload did: applied with its changes, or refused with every error (and the running snapshot kept).</summary>
public sealed record ReloadResult
{
    /// <summary>What is read at start only, whatever a reload finds: a change to it takes a restart.</summary>
    public static IReadOnlyList<string> NeedsRestart { get; } =
        ["the event-loop count (the PGPROXY_EVENT_LOOPS environment variable)"];

    /// <summary>True when the new snapshot runs.</summary>
    public bool Applied => Errors.Count == 0;

    /// <summary>One line per problem, each naming the file and line, or the instance, key and file; empty when applied.</summary>
    public IReadOnlyList<string> Errors { get; init; } = [];

    /// <summary>What the applied snapshot changed, one line each; empty when refused or when nothing changed.</summary>
    public IReadOnlyList<string> Changes { get; init; } = [];

    /// <summary>The generation running after the reload: the new one when applied, the kept one when refused.</summary>
    public long Generation { get; init; }
}
