using System.Net;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tests.Rules;

/// <summary>Reading <c>instances[].rules</c> and the rule settings: the issue's shape, defaults, and every error with its line.</summary>
public sealed class RulesConfigTests
{
    /// <summary>Issue 13's configuration, as the issue writes it (its masks are read by MasksConfigTests).</summary>
    private const string IssueExample = """
        instances:
          - listen: {name: proxy, host: 0.0.0.0, port: 6432}
            redirect: {name: postgresql, host: db, port: 5432}
            rules:                              # applied in this order, before plugins
              - name: no-ddl-for-app            # required, unique per instance; shown in logs, stats, test-rules
                match:                          # every key given must hold
                  statement: [ddl]
                  user: [app]                   # exact names, or /regex/
                  database: [shop]
                  application-name: ['/^Tableau/']
                  client: [10.0.0.0/8]          # CIDR
                  protocol: simple              # simple | extended (both when absent)
                  tables: [public.orders]
                  fingerprint: 2a5bc1e0f0a9e37f
                  query: 'COUNT\(DISTINCT "(\w+)"\."visitor"\)'   # .NET regex on the query text
                refuse: {sqlstate: '42501', message: 'DDL is not allowed through this port'}
              - name: hll-visitors
                match: {query: 'COUNT\(DISTINCT "(?<t>\w+)"\."visitor"\)'}
                rewrite: 'hll_cardinality(hll_union_agg("${t}"."visitor_hll"))::bigint'
                mode: log-only
              - name: tag-tableau
                match: {application-name: ['/^Tableau/']}
                tag: 'source=tableau'
                continue: true
              - name: audit-orders
                match: {tables: [public.orders], statement: [update, delete]}
                log: true
            masks:
              - name: emails
                columns: [public.customers.email]
                with: email
                unless: {user: [dpo]}
                computed: refuse
                copy: refuse
                mode: enforce
        settings:
          rule-timeout: 100ms
          rules-mode: enforce
          watch-config: false
        """;

    private static ConfigError SingleError(string rules, string settings = "") =>
        Assert.Single(Assert.Throws<ConfigException>(() => RuleSets.Load(RuleSets.Config(rules, settings))).Errors);

    [Fact]
    public void The_issue_example_loads_with_its_values()
    {
        ProxyConfig config = RuleSets.Load(IssueExample);

        Assert.Equal(TimeSpan.FromMilliseconds(100), config.Settings.RuleTimeout);
        Assert.Equal(RuleMode.Enforce, config.Settings.RulesMode);
        Assert.False(config.Settings.WatchConfig);
        IReadOnlyList<RuleConfig> rules = config.Instances[0].Rules;
        Assert.Equal(["no-ddl-for-app", "hll-visitors", "tag-tableau", "audit-orders"], rules.Select(rule => rule.Name));

        RuleConfig first = rules[0];
        Assert.Equal(5, first.Line);
        Assert.Equal(StatementKinds.Ddl, first.Match.Statements);
        Assert.Equal(["app"], first.Match.Users.Select(user => user.Text));
        Assert.False(first.Match.Users[0].IsPattern);
        Assert.True(first.Match.ApplicationNames[0].IsPattern);
        Assert.True(first.Match.ApplicationNames[0].IsMatch("Tableau Desktop"));
        Assert.Equal([IPNetwork.Parse("10.0.0.0/8")], first.Match.Clients);
        Assert.Equal(QueryProtocol.Simple, first.Match.Protocol);
        Assert.Equal([new TableName("public", "orders")], first.Match.Tables);
        Assert.Equal(["2a5bc1e0f0a9e37f"], first.Match.Fingerprints);
        Assert.True(first.Match.Query!.IsLinear);
        Assert.Equal(new RuleRefusal("42501", "DDL is not allowed through this port"), first.Refuse);

        Assert.Equal(RuleMode.LogOnly, rules[1].Mode);
        Assert.Equal("hll_cardinality(hll_union_agg(\"${t}\".\"visitor_hll\"))::bigint", rules[1].Rewrite);
        Assert.True(rules[2].Continue);
        Assert.Equal("source=tableau", rules[2].Tag);
        Assert.True(rules[3].Log);
        Assert.Equal(StatementKinds.Update | StatementKinds.Delete, rules[3].Match.Statements);
    }

    [Fact]
    public void Absent_rule_settings_take_their_defaults()
    {
        ProxyConfig config = RuleSets.Load(RuleSets.Config("[]"));

        Assert.Equal(TimeSpan.FromMilliseconds(100), config.Settings.RuleTimeout);
        Assert.Equal(RuleMode.Enforce, config.Settings.RulesMode);
        Assert.False(config.Settings.WatchConfig);
        Assert.Empty(config.Instances[0].Rules);
    }

    [Fact]
    public void Rule_settings_are_read()
    {
        ProxyConfig config = RuleSets.Load(RuleSets.Config("[]", "rule-timeout: 2s\nrules-mode: log-only\nwatch-config: true"));

        Assert.Equal(TimeSpan.FromSeconds(2), config.Settings.RuleTimeout);
        Assert.Equal(RuleMode.LogOnly, config.Settings.RulesMode);
        Assert.True(config.Settings.WatchConfig);
    }

    [Fact]
    public void A_rule_without_match_conditions_and_defaults()
    {
        RuleConfig rule = Assert.Single(RuleSets.Load(RuleSets.Config("- {name: all, match: {}, log: true}")).Instances[0].Rules);

        Assert.Same(rule.Match, rule.Match);
        Assert.Equal(StatementKinds.None, rule.Match.Statements);
        Assert.Null(rule.Match.Query);
        Assert.Equal(RuleMode.Enforce, rule.Mode);
        Assert.False(rule.Continue);
        Assert.False(rule.Changes);
    }

    [Fact]
    public void A_single_value_stands_for_a_list_of_one_and_names_are_read_as_sql_reads_them()
    {
        RuleConfig rule = Assert.Single(RuleSets.Load(RuleSets.Config("""
            - name: one
              match:
                user: app
                statement: DELETE
                tables: [Orders, Sales."Order Lines", '"a.b"']
                fingerprint: 2A5BC1E0F0A9E37F
                client: ['::ffff:10.0.0.0/104', 192.168.1.7, '2001:db8::/32']
              refuse: {}
            """)).Instances[0].Rules);

        Assert.Equal("app", Assert.Single(rule.Match.Users).Text);
        Assert.Equal(StatementKinds.Delete, rule.Match.Statements);
        Assert.Equal([new TableName(null, "orders"), new TableName("sales", "Order Lines"), new TableName(null, "a.b")], rule.Match.Tables);
        Assert.Equal(["2a5bc1e0f0a9e37f"], rule.Match.Fingerprints);
        Assert.Equal([IPNetwork.Parse("10.0.0.0/8"), IPNetwork.Parse("192.168.1.7/32"), IPNetwork.Parse("2001:db8::/32")], rule.Match.Clients);
        Assert.Equal(new RuleRefusal("42501", "refused by PgProxy rule \"one\""), rule.Refuse);
    }

    [Fact]
    public void A_pattern_with_a_backreference_or_a_lookaround_backtracks_and_others_are_linear()
    {
        IReadOnlyList<RuleConfig> rules = RuleSets.Load(RuleSets.Config("""
            - {name: linear, match: {query: '(?<t>\w+)\.(\d+)'}, log: true}
            - {name: backreference, match: {query: '(a+)\1'}, log: true}
            - {name: lookahead, match: {query: 'x(?=y)'}, log: true}
            """, "rule-timeout: 250ms")).Instances[0].Rules;

        Assert.True(rules[0].Match.Query!.IsLinear);
        Assert.False(rules[1].Match.Query!.IsLinear);
        Assert.False(rules[2].Match.Query!.IsLinear);
        Assert.All(rules, rule => Assert.Equal(TimeSpan.FromMilliseconds(250), rule.Match.Query!.Regex.MatchTimeout));
    }

    [Fact]
    public void Instances_share_a_list_of_rules_through_a_yaml_anchor()
    {
        ProxyConfig config = RuleSets.Load("""
            instances:
              - listen: {name: one, host: 127.0.0.1, port: 6001}
                redirect: {name: db, host: 127.0.0.1, port: 5432}
                rules: &shared
                  - {name: no-ddl, match: {statement: [ddl]}, refuse: {}}
              - listen: {name: two, host: 127.0.0.1, port: 6002}
                redirect: {name: db, host: 127.0.0.1, port: 5432}
                rules: *shared
            """);

        Assert.Equal("no-ddl", Assert.Single(config.Instances[1].Rules).Name);
        Assert.Equal(config.Instances[0].Rules[0].Match.Statements, config.Instances[1].Rules[0].Match.Statements);
    }

    [Fact]
    public void The_masks_key_is_read_and_other_unknown_instance_keys_are_still_errors()
    {
        RuleSets.Load(RuleSets.Config("[]").Replace("    rules:", "    masks: [{name: x, columns: [t.a]}]\n    rules:", StringComparison.Ordinal));

        var error = Assert.Single(Assert.Throws<ConfigException>(() => RuleSets.Load(RuleSets.Config("[]").Replace("    rules:", "    mask: []\n    rules:", StringComparison.Ordinal))).Errors);
        Assert.Equal("instances[0].mask", error.KeyPath);
        Assert.StartsWith("unknown key 'mask'", error.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, string, int, int, string> Errors() => new()
    {
        // rules, key path, line, column, message start. The rules start on line 7 of the file (RuleSets.Config).
        { "- {name: r, match: {query: 'COUNT(('}, log: true}", "instances[0].rules[0].match.query", 7, 34, "invalid regular expression: Invalid pattern 'COUNT((' at offset 7. Not enough )'s." },
        { "- {name: r, match: {user: ['/[/']}, log: true}", "instances[0].rules[0].match.user[0]", 7, 34, "invalid regular expression: Invalid pattern '[' at offset 1. Unterminated [] set." },
        { "- {name: r, match: {}, refuse: {sqlstate: '4250'}}", "instances[0].rules[0].refuse.sqlstate", 7, 49, "expected a SQLSTATE: five digits or upper-case letters such as '42501', got '4250'" },
        { "- {name: r, match: {}, refuse: {sqlstate: 42x01}}", "instances[0].rules[0].refuse.sqlstate", 7, 49, "expected a SQLSTATE: five digits or upper-case letters such as '42501', got '42x01'" },
        { "- {name: r, match: {client: [10.0.0/8]}, log: true}", "instances[0].rules[0].match.client[0]", 7, 36, "expected a CIDR such as 10.0.0.0/8 or 2001:db8::/32, or an IP address, got '10.0.0/8'" },
        { "- {name: r, match: {client: [10.0.0.1/8]}, log: true}", "instances[0].rules[0].match.client[0]", 7, 36, "'10.0.0.1/8' has bits set beyond its /8 prefix; the network is 10.0.0.0/8" },
        { "- {name: r, match: {client: [10.0.0.0/33]}, log: true}", "instances[0].rules[0].match.client[0]", 7, 36, "expected a prefix length from 0 to 32 after '/', got '10.0.0.0/33'" },
        { "- {name: r, match: {statement: [drop]}, log: true}", "instances[0].rules[0].match.statement[0]", 7, 39, "expected one of select, insert, update, delete, merge, ddl, copy, transaction, set, utility, got 'drop'" },
        { "- {name: r, match: {protocol: both}, log: true}", "instances[0].rules[0].match.protocol", 7, 37, "expected one of simple, extended, got 'both'" },
        { "- {name: r, match: {fingerprint: abc}, log: true}", "instances[0].rules[0].match.fingerprint", 7, 40, "expected a fingerprint of 16 hexadecimal digits, as 'pgproxy fingerprint' prints it, got 'abc'" },
        { "- {name: r, match: {tables: [a.b.c]}, log: true}", "instances[0].rules[0].match.tables[0]", 7, 36, "expected a relation name, table or schema.table (double quotes keep letter case and dots), got 'a.b.c'" },
        { "- {name: r, match: {}}", "instances[0].rules[0]", 7, 9, "a rule needs at least one action: refuse, rewrite, tag or log: true" },
        { "- {name: r, match: {}, log: false}", "instances[0].rules[0]", 7, 9, "a rule needs at least one action: refuse, rewrite, tag or log: true" },
        { "- {name: r, match: {}, tag: 'a */ b'}", "instances[0].rules[0].tag", 7, 35, "a tag cannot hold '*/' or '/*': it is written inside a /* */ comment, which they would end or nest" },
        { "- {name: r, match: {}, tag: 'a /* b'}", "instances[0].rules[0].tag", 7, 35, "a tag cannot hold '*/' or '/*': it is written inside a /* */ comment, which they would end or nest" },
        { "- {name: r, match: {user: [a]}, rewrite: x}", "instances[0].rules[0].rewrite", 7, 39, "rewrite replaces what match.query matches; this rule has no match.query" },
        { "- {name: r, match: {query: '(?<t>a)'}, rewrite: '${u}'}", "instances[0].rules[0].rewrite", 7, 55, "${u} names no group of match.query; its groups are 0, t" },
        { "- {name: r, match: {}, refuse: {}, tag: x}", "instances[0].rules[0].refuse", 7, 30, "refuse cannot be combined with rewrite or tag: a refused statement does not run" },
        { "- {name: r, match: {}, refuse: {}, continue: true}", "instances[0].rules[0].continue", 7, 42, "continue has no effect on a rule that refuses: no later rule sees a refused statement" },
        { "- {name: r, match: {anywhere: true}, log: true}", "instances[0].rules[0].match.anywhere", 7, 27, "anywhere applies to match.query, which this rule does not have" },
        { "- {name: r, match: {}, log: yes}", "instances[0].rules[0].log", 7, 35, "expected true or false, got 'yes'" },
        { "- {name: r, match: {}, log: true, mode: dry-run}", "instances[0].rules[0].mode", 7, 47, "expected one of enforce, log-only, got 'dry-run'" },
        { "- {match: {}, log: true}", "instances[0].rules[0].name", 7, 9, "required key 'name' is missing" },
        { "- {name: r, log: true}", "instances[0].rules[0].match", 7, 9, "required key 'match' is missing" },
        { "- {name: r, match: {querry: x}, log: true}", "instances[0].rules[0].match.querry", 7, 27, "unknown key 'querry'; expected one of statement, user, database, application-name, client, protocol, tables, fingerprint, query, anywhere" },
        { "- {name: r, match: {application_name: [x]}, log: true}", "instances[0].rules[0].match.application_name", 7, 27, "unknown key 'application_name'; keys are hyphenated: did you mean 'application-name'?" },
        { "- {name: r, match: {}, log: true, contine: true}", "instances[0].rules[0].contine", 7, 41, "unknown key 'contine'; expected one of name, match, refuse, rewrite, tag, log, mode, continue" },
        { "- just-a-name", "instances[0].rules[0]", 7, 9, "expected a rule (a mapping with keys name, match, refuse, rewrite, tag, log, mode, continue), got 'just-a-name'" },
    };

    [Theory]
    [MemberData(nameof(Errors))]
    public void A_mistake_is_reported_with_its_key_and_line(string rules, string keyPath, int line, int column, string message)
    {
        ConfigError error = SingleError(rules);

        Assert.Equal((keyPath, line, column, message), (error.KeyPath, error.Line, error.Column, error.Message));
    }

    [Fact]
    public void A_second_rule_of_the_same_name_names_the_first()
    {
        ConfigError error = SingleError("""
            - {name: same, match: {}, log: true}
            - {name: same, match: {}, log: true}
            """);

        Assert.Equal(("instances[0].rules[1].name", 8, 16), (error.KeyPath, error.Line, error.Column));
        Assert.Equal("rule name 'same' is already used by instances[0].rules[0].name (line 7)", error.Message);
    }

    [Fact]
    public void Every_mistake_of_a_file_is_reported_at_once()
    {
        var exception = Assert.Throws<ConfigException>(() => RuleSets.Load(RuleSets.Config("""
            - name: a
              match: {query: '('}
              log: true
            - name: b
              match: {client: [nowhere]}
              refuse: {sqlstate: x}
            """, "rules-mode: off\nrule-timeout: 0")));

        Assert.Equal(
            [
                "config.yml:2:15: settings.rules-mode: expected one of enforce, log-only, got 'off'",
                "config.yml:3:17: settings.rule-timeout: expected a duration greater than zero and at most 24h (seconds, or with unit ms, s, m or h such as 10s), got '0'",
                "config.yml:10:24: instances[0].rules[0].match.query: invalid regular expression: Invalid pattern '(' at offset 1. Not enough )'s.",
                "config.yml:13:26: instances[0].rules[1].match.client[0]: expected a CIDR such as 10.0.0.0/8 or 2001:db8::/32, or an IP address, got 'nowhere'",
                "config.yml:14:28: instances[0].rules[1].refuse.sqlstate: expected a SQLSTATE: five digits or upper-case letters such as '42501', got 'x'",
            ],
            exception.Message.Split('\n'));
    }

    [Fact]
    public void Watch_config_must_be_a_boolean()
    {
        var error = Assert.Single(Assert.Throws<ConfigException>(() => RuleSets.Load(RuleSets.Config("[]", "watch-config: 'true'"))).Errors);

        Assert.Equal("settings.watch-config", error.KeyPath);
        Assert.Equal("expected true or false, got 'true' (a quoted value is a string; remove the quotes)", error.Message);
    }
}
