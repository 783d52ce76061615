using System.IO.Pipelines;

namespace PgProxy.Core.Server;

/// <summary>
/// The session's connection to its server: the stream, the reader over it, and whether it is encrypted. The
/// authentication exchange may replace it (the plain-text fallback of <c>redirect.tls.mode: prefer</c>) before the
/// relay starts; whoever holds it disposes the current one.
/// </summary>
internal sealed class UpstreamLeg(Stream stream, PipeReader reader, bool encrypted) : IAsyncDisposable
{
    public Stream Stream { get; private set; } = stream;

    public PipeReader Reader { get; private set; } = reader;

    public bool Encrypted { get; private set; } = encrypted;

    private int loggedIn;

    /// <summary>Whether PgProxy's own login (pooling) read the server's first ReadyForQuery; see <see cref="MarkLoggedIn"/>.</summary>
    public bool LoggedIn => Volatile.Read(ref loggedIn) != 0;

    /// <summary>The login reached ReadyForQuery: <c>server-login-timeout</c> no longer applies.</summary>
    public void MarkLoggedIn() => Volatile.Write(ref loggedIn, 1);

    /// <summary>Closes the current connection and takes <paramref name="replacement"/> in its place.</summary>
    public async ValueTask ReplaceAsync(Stream replacement, PipeReader replacementReader, bool replacementEncrypted)
    {
        await DisposeAsync().ConfigureAwait(false);
        Stream = replacement;
        Reader = replacementReader;
        Encrypted = replacementEncrypted;
    }

    public async ValueTask DisposeAsync()
    {
        await Reader.CompleteAsync().ConfigureAwait(false);
        await Stream.DisposeAsync().ConfigureAwait(false);
    }
}
