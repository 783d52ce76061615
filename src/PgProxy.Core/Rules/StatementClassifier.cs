using System.Collections;
using System.Collections.Concurrent;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using PgProxy.Core.Configuration;
using PgQuery;

namespace PgProxy.Core.Rules;

/// <summary>A relation a statement names: schema as written (null when the search path decides) and name, both as PostgreSQL folded them.</summary>
internal readonly record struct RelationReference(string? Schema, string Name);

/// <summary>
/// What <c>statement</c> and <c>tables</c> rules need from a parse tree: the kinds of a statement and the relations it
/// reads or writes. The tree is walked through protobuf's reflection, iteratively, so that every node type of the
/// grammar is covered (a new PostgreSQL statement still has its relations found) and no nesting depth can overflow
/// the stack.
/// </summary>
internal static class StatementClassifier
{
    // Per message type, the message-typed fields to descend into: plain fields, and the oneofs (a Node holds exactly one
    // of its 250-odd cases, found through the oneof rather than by trying each field).
    private static readonly ConcurrentDictionary<MessageDescriptor, (FieldDescriptor[] Fields, OneofDescriptor[] Oneofs)> Plans = new();

    /// <summary>The kinds of one parsed statement: its own, and those of the INSERT, UPDATE, DELETE and MERGE it holds.</summary>
    public static StatementKinds Classify(Node statement)
    {
        StatementKinds kinds = KindOf(statement);
        Walk(statement, node =>
        {
            kinds |= node switch
            {
                InsertStmt => StatementKinds.Insert,
                UpdateStmt => StatementKinds.Update,
                DeleteStmt => StatementKinds.Delete,
                MergeStmt => StatementKinds.Merge,
                _ => StatementKinds.None,
            };
        });
        return kinds;
    }

    /// <summary>
    /// Every relation the statement names: each RangeVar (FROM, JOIN, INSERT INTO, UPDATE, DELETE, MERGE, COPY, CREATE,
    /// ALTER, TRUNCATE, LOCK, GRANT, ...) and the names of DROP TABLE, VIEW, MATERIALIZED VIEW, FOREIGN TABLE and SEQUENCE.
    /// A common table expression named like a table counts as that table: the rule errs on the side of matching.
    /// </summary>
    public static void CollectRelations(Node statement, List<RelationReference> relations)
    {
        Walk(statement, node =>
        {
            switch (node)
            {
                case RangeVar range:
                    relations.Add(new RelationReference(range.Schemaname.Length == 0 ? null : range.Schemaname, range.Relname));
                    break;
                case DropStmt drop when drop.RemoveType is ObjectType.ObjectTable or ObjectType.ObjectView or ObjectType.ObjectMatview
                    or ObjectType.ObjectForeignTable or ObjectType.ObjectSequence:
                    foreach (Node name in drop.Objects)
                    {
                        if (name.List is { Items.Count: > 0 } parts && parts.Items[^1].String is { } last)
                        {
                            string? schema = parts.Items.Count >= 2 ? parts.Items[^2].String?.Sval : null;
                            relations.Add(new RelationReference(schema, last.Sval));
                        }
                    }

                    break;
            }
        });
    }

    /// <summary>
    /// The statement's own kind. The split between DDL and utility follows PostgreSQL's log_statement (GetCommandLogLevel in
    /// utility.c): what it logs as DDL is DDL here, with SELECT INTO, and TRUNCATE, which it counts as a modification but an
    /// account barred from DDL should not run either. Anything not named below, new statements included, is DDL.
    /// </summary>
    private static StatementKinds KindOf(Node statement) => statement.NodeCase switch
    {
        Node.NodeOneofCase.SelectStmt => statement.SelectStmt.IntoClause is null ? StatementKinds.Select : StatementKinds.Ddl,
        Node.NodeOneofCase.InsertStmt => StatementKinds.Insert,
        Node.NodeOneofCase.UpdateStmt => StatementKinds.Update,
        Node.NodeOneofCase.DeleteStmt => StatementKinds.Delete,
        Node.NodeOneofCase.MergeStmt => StatementKinds.Merge,
        Node.NodeOneofCase.CopyStmt => StatementKinds.Copy,
        Node.NodeOneofCase.TransactionStmt => StatementKinds.Transaction,
        Node.NodeOneofCase.VariableSetStmt => StatementKinds.Set,
        Node.NodeOneofCase.VariableShowStmt or Node.NodeOneofCase.ExplainStmt or Node.NodeOneofCase.DoStmt
            or Node.NodeOneofCase.CallStmt or Node.NodeOneofCase.VacuumStmt or Node.NodeOneofCase.LockStmt
            or Node.NodeOneofCase.NotifyStmt or Node.NodeOneofCase.ListenStmt or Node.NodeOneofCase.UnlistenStmt
            or Node.NodeOneofCase.LoadStmt or Node.NodeOneofCase.DiscardStmt or Node.NodeOneofCase.ConstraintsSetStmt
            or Node.NodeOneofCase.CheckPointStmt or Node.NodeOneofCase.ReindexStmt or Node.NodeOneofCase.PrepareStmt
            or Node.NodeOneofCase.ExecuteStmt or Node.NodeOneofCase.DeallocateStmt or Node.NodeOneofCase.DeclareCursorStmt
            or Node.NodeOneofCase.FetchStmt or Node.NodeOneofCase.ClosePortalStmt => StatementKinds.Utility,
        Node.NodeOneofCase.None => StatementKinds.None,
        _ => StatementKinds.Ddl,
    };

    /// <summary>Visits every message of the tree below <paramref name="root"/>, the root included, depth first, without recursion.</summary>
    internal static void Walk(IMessage root, Action<IMessage> visit)
    {
        var pending = new Stack<IMessage>();
        pending.Push(root);
        while (pending.TryPop(out IMessage? message))
        {
            visit(message);
            (FieldDescriptor[] fields, OneofDescriptor[] oneofs) = Plans.GetOrAdd(message.Descriptor, Plan);
            foreach (FieldDescriptor field in fields)
            {
                Push(pending, field, field.Accessor.GetValue(message));
            }

            foreach (OneofDescriptor oneof in oneofs)
            {
                if (oneof.Accessor.GetCaseFieldDescriptor(message) is { FieldType: FieldType.Message } chosen)
                {
                    Push(pending, chosen, chosen.Accessor.GetValue(message));
                }
            }
        }
    }

    private static void Push(Stack<IMessage> pending, FieldDescriptor field, object? value)
    {
        if (field.IsRepeated && value is IList items)
        {
            foreach (object? item in items)
            {
                if (item is IMessage child)
                {
                    pending.Push(child);
                }
            }
        }
        else if (value is IMessage child)
        {
            pending.Push(child);
        }
    }

    private static (FieldDescriptor[] Fields, OneofDescriptor[] Oneofs) Plan(MessageDescriptor descriptor) =>
        ([.. descriptor.Fields.InDeclarationOrder().Where(field => field.FieldType == FieldType.Message && field.RealContainingOneof is null)],
         [.. descriptor.Oneofs.Where(oneof => !oneof.IsSynthetic)]);
}
