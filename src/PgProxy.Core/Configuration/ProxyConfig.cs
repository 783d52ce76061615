using Microsoft.Extensions.Logging;

namespace PgProxy.Core.Configuration;

/// <summary>One validated configuration file: what PgProxy runs. Immutable; a reload builds a new one.</summary>
/// <param name="Plugins">Plugin names from the top-level <c>plugins</c> list, in file order.</param>
/// <param name="Settings">The <c>settings</c> section.</param>
/// <param name="Instances">Every instance; each listens on its own address.</param>
/// <param name="BaseDirectory">Directory of the configuration file: relative paths in it resolve against this.</param>
public sealed record ProxyConfig(
    IReadOnlyList<PluginReference> Plugins,
    ProxySettings Settings,
    IReadOnlyList<InstanceConfig> Instances,
    string BaseDirectory)
{
    /// <summary>The <c>metrics</c> section (see <see cref="MetricsConfig"/>); null when absent: no Prometheus endpoint.</summary>
    public MetricsConfig? Metrics { get; init; }

    /// <summary>The <c>stats</c> section.</summary>
    public StatsConfig Stats { get; init; } = new();

    /// <summary>The <c>query-log</c> section; null when there is no query log.</summary>
    public QueryLogConfig? QueryLog { get; init; }

    /// <summary><c>admin</c>: the console; null when absent (database <c>pgproxy</c> is then relayed like any other).</summary>
    public AdminConfig? Admin { get; init; }
}

/// <summary>A plugin named in the top-level <c>plugins</c> list, with the line it was named on.</summary>
/// <param name="Name">The plugin's name.</param>
/// <param name="Line">The line it was named on.</param>
/// <param name="Settings">
/// The plugin's own settings (the <c>{name, settings}</c> form of an entry), handed to its static <c>Configure</c> method
/// when it loads; empty for the plain form.
/// </param>
public sealed record PluginReference(string Name, int Line, IReadOnlyDictionary<string, string> Settings)
{
    /// <summary>A plugin named without settings.</summary>
    public PluginReference(string name, int line)
        : this(name, line, new Dictionary<string, string>(StringComparer.Ordinal))
    {
    }

    /// <summary>Equal when name, line and every setting are equal (a reload compares configurations).</summary>
    public bool Equals(PluginReference? other) =>
        other is not null && Name == other.Name && Line == other.Line && Settings.Count == other.Settings.Count
        && Settings.All(setting => other.Settings.TryGetValue(setting.Key, out string? value) && value == setting.Value);

    public override int GetHashCode() => HashCode.Combine(Name, Line, Settings.Count);
}

/// <summary>The <c>settings</c> section.</summary>
public sealed record ProxySettings
{
    /// <summary><c>log-level</c>: trace, debug, info, warning, error, critical (Python's names warn/warning/fatal too).</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Information;

    /// <summary><c>general-log</c>: file for the general log, absolute; null means console only.</summary>
    public string? GeneralLog { get; init; }

    /// <summary><c>intercept-log</c>: file for the intercept log, absolute; null means not written.</summary>
    public string? InterceptLog { get; init; }

    /// <summary><c>plugin-dir</c>: absolute; default <c>plugins</c> next to the configuration file.</summary>
    public string PluginDirectory { get; init; } = "plugins";

    /// <summary><c>log-rotation</c>: when log files roll over.</summary>
    public LogRotation LogRotation { get; init; } = LogRotation.Size;

    /// <summary><c>log-max-size</c>: a log file rolls over at this size (bytes). Default 100 MB.</summary>
    public long LogMaxSize { get; init; } = 100L * 1024 * 1024;

    /// <summary><c>log-retained-files</c>: how many rolled files of each log are kept. Default 10.</summary>
    public int LogRetainedFiles { get; init; } = 10;

    /// <summary><c>shutdown-timeout</c>: on SIGINT/SIGTERM, how long busy sessions get to reach an idle point. Default 30 s.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// <c>plugin-timeout</c>: how long one interceptor call may take, its metadata queries included, when its entry sets
    /// no <c>timeout</c>. Default 5 s.
    /// </summary>
    public TimeSpan PluginTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// <c>plugin-failure</c>: what happens when an interceptor throws or times out, when its entry sets no
    /// <c>on-error</c>. Null (the default) leaves each kind its own: pass for queries and connects, refuse for responses.
    /// </summary>
    public Interception.InterceptorFailurePolicy? PluginFailure { get; init; }

    /// <summary><c>rule-timeout</c>: how long one regular-expression match of a rule may take. Default 100 ms.</summary>
    public TimeSpan RuleTimeout { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary><c>rules-mode</c>: log-only makes every rule log-only, whatever its own <c>mode</c>. Default enforce.</summary>
    public RuleMode RulesMode { get; init; } = RuleMode.Enforce;

    /// <summary><c>watch-config</c>: a change of the configuration file reloads it, as SIGHUP does. Default false.</summary>
    public bool WatchConfig { get; init; }
}

/// <summary>How log files roll over.</summary>
public enum LogRotation
{
    /// <summary>Roll when the file reaches <c>log-max-size</c>.</summary>
    Size,

    /// <summary>Roll every day, and also when the file reaches <c>log-max-size</c>.</summary>
    Daily,
}

/// <summary>One entry of <c>instances</c>: a listening address relayed to one upstream PostgreSQL.</summary>
public sealed record InstanceConfig(
    EndpointConfig Listen,
    EndpointConfig Redirect,
    InterceptConfig Intercept,
    InstanceLimits Limits)
{
    /// <summary><c>listen.tls</c>: disabled unless set.</summary>
    public ListenTlsConfig ListenTls { get; init; } = ListenTlsConfig.Disabled;

    /// <summary><c>redirect.tls</c>: prefer unless set, as libpq.</summary>
    public UpstreamTlsConfig UpstreamTls { get; init; } = UpstreamTlsConfig.Default;

    /// <summary><c>auth</c>: null when absent.</summary>
    public AuthConfig? Auth { get; init; }

    /// <summary><c>rules</c>: in the order they apply, before the plugins. Empty when absent.</summary>
    public IReadOnlyList<RuleConfig> Rules { get; init; } = [];

    /// <summary><c>masks</c>: result columns masked on the way to the client. Empty when absent.</summary>
    public IReadOnlyList<MaskConfig> Masks { get; init; } = [];

    /// <summary><c>pool</c>: connection pooling; <see cref="PoolConfig.None"/> when absent.</summary>
    public PoolConfig Pool { get; init; } = PoolConfig.None;

    /// <summary><c>listen.keepalive</c>: TCP keepalive of client connections; the system's timings unless set.</summary>
    public KeepaliveConfig ListenKeepalive { get; init; } = KeepaliveConfig.SystemDefault;

    /// <summary><c>redirect.keepalive</c>: TCP keepalive of upstream connections; the system's timings unless set.</summary>
    public KeepaliveConfig RedirectKeepalive { get; init; } = KeepaliveConfig.SystemDefault;
}

/// <summary>
/// <c>listen.keepalive</c> or <c>redirect.keepalive</c>: SO_KEEPALIVE is on for every connection (as PostgreSQL and
/// libpq have it); each timing left null keeps the system's (on Linux net.ipv4.tcp_keepalive_time 7200 s,
/// tcp_keepalive_intvl 75 s, tcp_keepalive_probes 9).
/// </summary>
public sealed record KeepaliveConfig
{
    public static KeepaliveConfig SystemDefault { get; } = new();

    /// <summary><c>idle</c>: silence before the first probe (TCP_KEEPIDLE).</summary>
    public TimeSpan? Idle { get; init; }

    /// <summary><c>interval</c>: between unanswered probes (TCP_KEEPINTVL).</summary>
    public TimeSpan? Interval { get; init; }

    /// <summary><c>count</c>: unanswered probes before the connection is dropped (TCP_KEEPCNT).</summary>
    public int? Count { get; init; }

    /// <summary>The longest a dead peer stays unnoticed on an otherwise silent connection, when every timing is set.</summary>
    public TimeSpan? Bound => Idle is { } idle && Interval is { } interval && Count is { } count ? idle + (interval * count) : null;
}

/// <summary><c>listen</c> or <c>redirect</c>: a name for logs and errors, a host and a port.</summary>
public sealed record EndpointConfig(string Name, string Host, int Port);

/// <summary><c>intercept</c>: interceptors by kind. Empty lists when absent or null.</summary>
public sealed record InterceptConfig(
    IReadOnlyList<InterceptorReference> Queries,
    IReadOnlyList<InterceptorReference> Connects,
    IReadOnlyList<InterceptorReference> Responses)
{
    public static InterceptConfig None { get; } = new([], [], []);

    public bool IsEmpty => Queries.Count == 0 && Connects.Count == 0 && Responses.Count == 0;
}

/// <summary>One <c>{plugin, function}</c> entry, with its line for error messages.</summary>
public sealed record InterceptorReference(string Plugin, string Function, int Line)
{
    /// <summary><c>on-error</c>: null when absent, so <c>settings.plugin-failure</c> or the kind's default applies.</summary>
    public Interception.InterceptorFailurePolicy? OnError { get; init; }

    /// <summary><c>timeout</c>: null when absent, so <c>settings.plugin-timeout</c> applies.</summary>
    public TimeSpan? Timeout { get; init; }
}

/// <summary><c>limits</c> of an instance.</summary>
public sealed record InstanceLimits
{
    /// <summary><c>max-message-size</c>: largest message a client may send (bytes). Default 1 GiB.</summary>
    public long MaxMessageSize { get; init; } = 1L << 30;

    /// <summary><c>connect-timeout</c>: how long to wait for the upstream TCP connection. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary><c>startup-timeout</c>: how long a client may take to send its start-up packet. Default 30 s.</summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary><c>max-connections</c>: client sessions at once on this instance; 0 means no limit (default).</summary>
    public int MaxConnections { get; init; }

    /// <summary>
    /// <c>max-intercepted-size</c>: the largest Query or Parse handed to rules and query interceptors (bytes); a larger
    /// one is relayed as it came (on-error: pass) or refused (on-error: refuse). Default 16 MB.
    /// </summary>
    public long MaxInterceptedSize { get; init; } = Interception.InstanceLimitsDefaults.MaxInterceptedSize;

    /// <summary>
    /// <c>client-idle-timeout</c>: after login, how long a client may send nothing before its session is ended with
    /// FATAL 57P05; null (the default, or 0) means never.
    /// </summary>
    public TimeSpan? ClientIdleTimeout { get; init; }

    /// <summary><c>server-login-timeout</c>: from the upstream TCP connect to its first ReadyForQuery. Default 30 s.</summary>
    public TimeSpan ServerLoginTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public static InstanceLimits Default { get; } = new();
}

/// <summary><c>listen.tls.mode</c>: whether clients may, or must, use TLS.</summary>
public enum ListenTlsMode
{
    /// <summary>SSLRequest is answered 'N'; direct TLS is refused. The default.</summary>
    Disable,

    /// <summary>TLS when the client asks for it, plain text otherwise.</summary>
    Allow,

    /// <summary>TLS only: a plain-text StartupMessage is refused with 28000.</summary>
    Require,
}

/// <summary><c>listen.tls</c>: TLS between clients and the proxy.</summary>
public sealed record ListenTlsConfig
{
    public static ListenTlsConfig Disabled { get; } = new();

    public ListenTlsMode Mode { get; init; } = ListenTlsMode.Disable;

    /// <summary><c>cert-file</c>: PEM certificate (leaf first, then any intermediates), absolute.</summary>
    public string? CertFile { get; init; }

    /// <summary><c>key-file</c>: PEM private key of the certificate, absolute.</summary>
    public string? KeyFile { get; init; }

    /// <summary><c>key-password</c>: password of an encrypted key-file; null when the key is not encrypted.</summary>
    public string? KeyPassword { get; init; }

    /// <summary><c>min-version</c>: the oldest TLS a client may use; 1.2 unless set (older versions are never offered).</summary>
    public TlsMinVersion MinVersion { get; init; } = TlsMinVersion.Tls12;

    /// <summary>True when the proxy ends TLS from clients (mode allow or require).</summary>
    public bool Enabled => Mode != ListenTlsMode.Disable;
}

/// <summary><c>listen.tls.min-version</c>: <c>1.2</c> or <c>1.3</c>.</summary>
public enum TlsMinVersion
{
    /// <summary>TLS 1.2 and 1.3 (the floor: 1.0 and 1.1 are never offered).</summary>
    Tls12,

    /// <summary>TLS 1.3 only.</summary>
    Tls13,
}

/// <summary><c>redirect.tls.mode</c>: libpq's sslmode, for the proxy's connections to its upstream.</summary>
public enum UpstreamTlsMode
{
    /// <summary>Plain text only.</summary>
    Disable,

    /// <summary>TLS if the server accepts SSLRequest, plain text if it answers 'N'. The default, as in libpq.</summary>
    Prefer,

    /// <summary>TLS or nothing; the certificate is checked only when a ca-file is given (as libpq does with a root certificate).</summary>
    Require,

    /// <summary>TLS, with the server certificate's chain checked against ca-file.</summary>
    VerifyCa,

    /// <summary>As verify-ca, and the certificate must name the redirect host.</summary>
    VerifyFull,
}

/// <summary><c>redirect.tls</c>: TLS between the proxy and its upstream.</summary>
public sealed record UpstreamTlsConfig
{
    public static UpstreamTlsConfig Default { get; } = new();

    public UpstreamTlsMode Mode { get; init; } = UpstreamTlsMode.Prefer;

    /// <summary><c>ca-file</c>: PEM roots trusted for the server certificate, absolute; null means the system's roots.</summary>
    public string? CaFile { get; init; }

    /// <summary><c>cert-file</c>: PEM client certificate presented to the server, absolute; optional.</summary>
    public string? CertFile { get; init; }

    /// <summary><c>key-file</c>: PEM key of the client certificate, absolute.</summary>
    public string? KeyFile { get; init; }
}

/// <summary>
/// <c>auth</c>: where SCRAM verifiers come from when the proxy must end SCRAM itself (TLS on both legs).
/// Either <see cref="AuthFile"/>, or <see cref="AuthUser"/> with <see cref="AuthQuery"/>.
/// </summary>
public sealed record AuthConfig
{
    /// <summary>The query run when <c>auth-query</c> is not set: the user's verifier from pg_authid, if the role may log in and has not expired.</summary>
    public const string DefaultAuthQuery =
        "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname = $1 AND rolcanlogin";

    /// <summary><c>auth-file</c>: lines <c>"user" "SCRAM-SHA-256$..."</c>, absolute.</summary>
    public string? AuthFile { get; init; }

    /// <summary><c>auth-query</c>: run on the upstream with the user name as $1; the row's last column is the verifier.</summary>
    public string AuthQuery { get; init; } = DefaultAuthQuery;

    /// <summary><c>auth-user</c>: the role that runs auth-query.</summary>
    public string? AuthUser { get; init; }

    /// <summary><c>auth-password</c>: that role's password; null when it needs none.</summary>
    public string? AuthPassword { get; init; }
}
