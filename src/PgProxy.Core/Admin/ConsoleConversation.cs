using System.Buffers;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Admin;

/// <summary>What the session does after a message has been answered.</summary>
internal enum ConversationStep
{
    /// <summary>Read the next message; what was written may wait.</summary>
    Continue,

    /// <summary>Send what was written now: a ReadyForQuery or a Flush ends the client's wait.</summary>
    Flush,

    /// <summary>Send what was written and close: Terminate, or a FATAL error.</summary>
    Close,
}

/// <summary>
/// The console's side of the protocol after the login, as PostgreSQL answers it, without sockets: simple queries (psql),
/// and parameterless extended-protocol statements (Parse, Bind, Describe, Execute, Sync, Close, Flush), so drivers such
/// as Npgsql can read it too. After an error in the extended protocol every message up to the next Sync is skipped. The
/// transaction status is always idle: the console has no transactions.
/// </summary>
internal sealed class ConsoleConversation(ConsoleExecutor executor)
{
    private readonly Dictionary<string, ConsoleCommand?> statements = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (ConsoleCommand? Command, short[] Formats)> portals = new(StringComparer.Ordinal);
    private readonly List<Action> afterFlush = [];
    private bool skippingToSync;

    /// <summary>Hands over what must wait until the response has reached the client (a SHUTDOWN), and forgets it.</summary>
    public IReadOnlyList<Action> TakeAfterFlush()
    {
        Action[] actions = [.. afterFlush];
        afterFlush.Clear();
        return actions;
    }

    /// <summary>Answers one message (its type byte and body) into <paramref name="output"/>.</summary>
    public async Task<ConversationStep> HandleAsync(byte code, ReadOnlySequence<byte> body, IBufferWriter<byte> output, CancellationToken cancellationToken)
    {
        switch ((FrontendMessageCode)code)
        {
            case FrontendMessageCode.Query:
                await QueryAsync(body, output, cancellationToken).ConfigureAwait(false);
                output.Write(PregeneratedMessages.ReadyForQueryIdle.Span);
                return ConversationStep.Flush;
            case FrontendMessageCode.Sync:
                skippingToSync = false;

                // Outside a transaction block PostgreSQL drops every portal at the end of the implicit transaction.
                portals.Clear();
                output.Write(PregeneratedMessages.ReadyForQueryIdle.Span);
                return ConversationStep.Flush;
            case FrontendMessageCode.Flush:
                return ConversationStep.Flush;
            case FrontendMessageCode.Terminate:
                return ConversationStep.Close;
            case FrontendMessageCode.Parse or FrontendMessageCode.Bind or FrontendMessageCode.Describe or FrontendMessageCode.Execute or FrontendMessageCode.Close:
                if (!skippingToSync)
                {
                    try
                    {
                        await ExtendedAsync((FrontendMessageCode)code, body, output, cancellationToken).ConfigureAwait(false);
                    }
                    catch (ConsoleException e)
                    {
                        ConsoleWire.WriteError(output, e);
                        skippingToSync = true;
                    }
                }

                return ConversationStep.Continue;
            case FrontendMessageCode.FunctionCall:
                ConsoleWire.WriteError(output, ErrorSeverity.Error, SqlStates.FeatureNotSupported, "the PgProxy console has no functions to call");
                output.Write(PregeneratedMessages.ReadyForQueryIdle.Span);
                return ConversationStep.Flush;
            case FrontendMessageCode.CopyData or FrontendMessageCode.CopyDone or FrontendMessageCode.CopyFail:
                // PostgreSQL ignores copy messages outside a COPY, and the console never starts one.
                return ConversationStep.Continue;
            default:
                ConsoleWire.WriteError(output, ErrorSeverity.Fatal, SqlStates.ProtocolViolation, $"invalid frontend message type {code}");
                return ConversationStep.Close;
        }
    }

    /// <summary>A simple query: each statement in turn, until one fails (as in PostgreSQL's implicit transaction).</summary>
    private async Task QueryAsync(ReadOnlySequence<byte> body, IBufferWriter<byte> output, CancellationToken cancellationToken)
    {
        if (!QueryMessages.TryReadQuery(body, ConsoleWire.Encoding, out string text))
        {
            ConsoleWire.WriteError(output, ErrorSeverity.Error, SqlStates.ProtocolViolation, "invalid Query message");
            return;
        }

        IReadOnlyList<string> statements = ConsoleCommandParser.Split(text);
        if (statements.Count == 0)
        {
            output.Write(PregeneratedMessages.EmptyQueryResponse.Span);
            return;
        }

        foreach (string statement in statements)
        {
            try
            {
                ConsoleResult result = await executor.ExecuteAsync(ConsoleCommandParser.Parse(statement), cancellationToken).ConfigureAwait(false);
                ConsoleWire.WriteResult(output, result, withDescription: true);
                Remember(result);
            }
            catch (ConsoleException e)
            {
                ConsoleWire.WriteError(output, e);
                return;
            }
        }
    }

    private async Task ExtendedAsync(FrontendMessageCode code, ReadOnlySequence<byte> body, IBufferWriter<byte> output, CancellationToken cancellationToken)
    {
        switch (code)
        {
            case FrontendMessageCode.Parse:
                if (!QueryMessages.TryReadParse(body, ConsoleWire.Encoding, out ParseMessage? parse))
                {
                    throw Malformed("Parse");
                }

                if (parse!.ParameterTypes.Length > 0)
                {
                    throw new ConsoleException(SqlStates.FeatureNotSupported, "console commands take no parameters");
                }

                IReadOnlyList<string> parts = ConsoleCommandParser.Split(parse.Text);
                if (parts.Count > 1)
                {
                    throw new ConsoleException(SqlStates.SyntaxError, "cannot insert multiple commands into a prepared statement");
                }

                statements[parse.StatementName] = parts.Count == 0 ? null : ConsoleCommandParser.Parse(parts[0]);
                output.Write(PregeneratedMessages.ParseComplete.Span);
                return;
            case FrontendMessageCode.Bind:
                if (!ExtendedMessages.TryReadBind(body, out string portal, out string statement, out int parameters, out short[] formats))
                {
                    throw Malformed("Bind");
                }

                if (!statements.TryGetValue(statement, out ConsoleCommand? bound))
                {
                    throw new ConsoleException("26000", $"prepared statement \"{statement}\" does not exist");
                }

                if (parameters > 0)
                {
                    throw new ConsoleException(SqlStates.ProtocolViolation, $"bind message supplies {parameters} parameters, but prepared statement \"{statement}\" requires 0");
                }

                if (formats.Length > 1 && formats.Length != (bound?.Info.Columns?.Count ?? 0))
                {
                    throw new ConsoleException(SqlStates.ProtocolViolation, $"bind message has {formats.Length} result formats but query has {bound?.Info.Columns?.Count ?? 0} columns");
                }

                portals[portal] = (bound, formats);
                output.Write(PregeneratedMessages.BindComplete.Span);
                return;
            case FrontendMessageCode.Describe:
                if (!ExtendedMessages.TryReadTarget(body, out byte target, out string name))
                {
                    throw Malformed("Describe");
                }

                if (target == (byte)'S')
                {
                    if (!statements.TryGetValue(name, out ConsoleCommand? described))
                    {
                        throw new ConsoleException("26000", $"prepared statement \"{name}\" does not exist");
                    }

                    ParameterDescriptionMessage.Write(output, []);
                    ConsoleWire.WriteDescription(output, described?.Info, []);
                    return;
                }

                (ConsoleCommand? command, short[] resultFormats) = Portal(name);
                ConsoleWire.WriteDescription(output, command?.Info, resultFormats);
                return;
            case FrontendMessageCode.Execute:
                if (!ExtendedMessages.TryReadExecute(body, out string executed))
                {
                    throw Malformed("Execute");
                }

                if (Portal(executed).Command is not { } run)
                {
                    output.Write(PregeneratedMessages.EmptyQueryResponse.Span);
                    return;
                }

                // The row limit of Execute is not honoured: console results are small, and every row is sent at once.
                ConsoleResult result = await executor.ExecuteAsync(run, cancellationToken).ConfigureAwait(false);
                ConsoleWire.WriteResult(output, result, withDescription: false);
                Remember(result);
                return;
            default:
                if (!ExtendedMessages.TryReadTarget(body, out byte closed, out string closedName))
                {
                    throw Malformed("Close");
                }

                // Closing what does not exist is not an error in PostgreSQL either.
                if (closed == (byte)'S')
                {
                    statements.Remove(closedName);
                }
                else
                {
                    portals.Remove(closedName);
                }

                output.Write(PregeneratedMessages.CloseComplete.Span);
                return;
        }
    }

    private (ConsoleCommand? Command, short[] Formats) Portal(string name) =>
        portals.TryGetValue(name, out var portal) ? portal : throw new ConsoleException("34000", $"portal \"{name}\" does not exist");

    private void Remember(ConsoleResult result)
    {
        if (result.AfterResponse is { } action)
        {
            afterFlush.Add(action);
        }
    }

    private static ConsoleException Malformed(string message) => new(SqlStates.ProtocolViolation, $"invalid {message} message");
}
