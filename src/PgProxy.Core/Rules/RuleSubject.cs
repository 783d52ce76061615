using System.Net;

namespace PgProxy.Core.Rules;

/// <summary>
/// Who sent a query, as far as rules care: the session's start-up user, database and application_name, and the client's
/// address. A value per session (application_name may change with SET); rules that use none of it cost nothing for it.
/// </summary>
/// <param name="User">The user the client logged in as; null when unknown.</param>
/// <param name="Database">The database of the session; null when unknown.</param>
/// <param name="ApplicationName">The session's application_name; null when the client set none.</param>
/// <param name="Client">The client's IP address (an IPv4-mapped IPv6 address is matched as IPv4); null for a Unix socket.</param>
public readonly record struct RuleSubject(string? User, string? Database, string? ApplicationName, IPAddress? Client);
