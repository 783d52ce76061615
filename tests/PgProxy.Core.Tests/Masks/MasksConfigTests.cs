using PgProxy.Core.Configuration;
using PgProxy.Core.Masks;

namespace PgProxy.Core.Tests.Masks;

/// <summary>Reading <c>instances[].masks</c>: the issue's shape, the defaults, and each error with its key and line.</summary>
public sealed class MasksConfigTests
{
    [Fact]
    public void The_issue_example_loads_with_its_values()
    {
        MaskConfig mask = Assert.Single(MaskSets.Load(MaskSets.Config("""
              - name: emails
                columns: [public.customers.email]   # source columns (schema.table.column); or output names: ['*.email']
                with: email
                unless: {user: [dpo]}
                computed: refuse
                copy: refuse
                mode: enforce

        """)).Instances[0].Masks);

        Assert.Equal("emails", mask.Name);
        Assert.Equal(6, mask.Line);
        Assert.Equal(new MaskColumn("public", "customers", "email"), Assert.Single(mask.Columns));
        Assert.Equal(MaskFunctionKind.Email, mask.With.Kind);
        Assert.Equal("dpo", Assert.Single(mask.Unless.Users).Text);
        Assert.Equal(MaskPolicy.Refuse, mask.Computed);
        Assert.Equal(MaskPolicy.Refuse, mask.Copy);
        Assert.Equal(RuleMode.Enforce, mask.Mode);
    }

    [Fact]
    public void Defaults_are_null_refuse_refuse_enforce_and_nobody_exempt()
    {
        MaskConfig mask = Assert.Single(MaskSets.Load(MaskSets.Config("      - {name: m, columns: ['*.ssn']}\n")).Instances[0].Masks);

        Assert.Equal(MaskFunctionKind.Null, mask.With.Kind);
        Assert.Equal(MaskPolicy.Refuse, mask.Computed);
        Assert.Equal(MaskPolicy.Refuse, mask.Copy);
        Assert.Equal(RuleMode.Enforce, mask.Mode);
        Assert.True(mask.Unless.IsEmpty);
        Assert.Equal(new MaskColumn(null, null, "ssn"), mask.Columns[0]);
        Assert.True(mask.Columns[0].IsOutputName);
    }

    [Theory]
    [InlineData("public.customers.email", "public", "customers", "email")]
    [InlineData("Customers.EMAIL", null, "customers", "email")]
    [InlineData("\"Sales\".\"Order Lines\".\"E.mail\"", "Sales", "Order Lines", "E.mail")]
    [InlineData("*.*.email", null, null, "email")]
    [InlineData("crm.*.email", "crm", null, "email")]
    public void Column_names_fold_as_sql_names_do_and_star_is_a_wildcard(string text, string? schema, string? table, string column)
    {
        Assert.True(MasksConfigReader.TryParseColumn(text, out MaskColumn? parsed));
        Assert.Equal(new MaskColumn(schema, table, column), parsed);
    }

    [Theory]
    [InlineData("email")]
    [InlineData("a.b.c.d")]
    [InlineData("customers.*")]
    [InlineData("customers.")]
    public void A_column_needs_a_relation_and_a_name(string text) => Assert.False(MasksConfigReader.TryParseColumn(text, out _));

    [Fact]
    public void Every_function_form_is_read()
    {
        MaskSet masks = MaskSets.Build("""
              - {name: a, columns: [t.a], with: hash}
              - {name: b, columns: [t.b], with: {constant: '***'}}
              - {name: c, columns: [t.c], with: {keep-last: 4}}
              - {name: d, columns: [t.d], with: {regex: '\d', replace: '#'}}
              - {name: e, columns: [t.e], with: {constant: ''}}
              - {name: f, columns: [t.f], with: 'null', computed: pass, copy: pass, mode: log-only}

        """);

        Assert.Equal([MaskFunctionKind.Hash, MaskFunctionKind.Constant, MaskFunctionKind.KeepLast, MaskFunctionKind.Regex, MaskFunctionKind.Constant, MaskFunctionKind.Null], masks.Masks.Select(m => m.Config.With.Kind));
        Assert.Equal("***", masks.Masks[1].Config.With.Constant);
        Assert.Equal(4, masks.Masks[2].Config.With.KeepLast);
        Assert.Equal("", masks.Masks[4].Config.With.Constant);
        Assert.Equal(MaskPolicy.Pass, masks.Masks[5].Config.Computed);
        Assert.Equal(MaskPolicy.Pass, masks.Masks[5].Config.Copy);
        Assert.Equal(RuleMode.LogOnly, masks.Masks[5].Mode);
    }

    [Fact]
    public void Rules_mode_log_only_makes_every_mask_log_only()
    {
        MaskSet masks = MaskSets.Build("      - {name: m, columns: [t.a], with: email, mode: enforce}\n", "  rules-mode: log-only\n");

        Assert.Equal(RuleMode.LogOnly, Assert.Single(masks.Masks).Mode);
        Assert.Equal(RuleMode.Enforce, masks.Masks[0].Config.Mode);
    }

    [Theory]
    [InlineData("      - {name: m, columns: [t.a], with: shuffle}\n", "instances[0].masks[0].with", 6, "expected one of null, hash, email")]
    [InlineData("      - {name: m, columns: [t.a], with: {keep-last: -1}}\n", "instances[0].masks[0].with.keep-last", 6, "expected an integer from 0")]
    [InlineData("      - {name: m, columns: [t.a], with: {regex: '(', replace: x}}\n", "instances[0].masks[0].with.regex", 6, "invalid regular expression")]
    [InlineData("      - {name: m, columns: [t.a], with: {regex: 'x'}}\n", "instances[0].masks[0].with.replace", 6, "required key 'replace' is missing")]
    [InlineData("      - {name: m, columns: [t.a], with: {upper: x}}\n", "instances[0].masks[0].with", 6, "unknown mask function 'upper'")]
    [InlineData("      - {name: m, columns: [email]}\n", "instances[0].masks[0].columns[0]", 6, "expected a column as schema.table.column")]
    [InlineData("      - {name: m, columns: []}\n", "instances[0].masks[0].columns", 6, "a mask needs at least one column")]
    [InlineData("      - {columns: [t.a]}\n", "instances[0].masks[0].name", 6, "required key 'name' is missing")]
    [InlineData("      - {name: m, columns: [t.a], computed: allow}\n", "instances[0].masks[0].computed", 6, "expected one of refuse, pass")]
    [InlineData("      - {name: m, columns: [t.a], copy: never}\n", "instances[0].masks[0].copy", 6, "expected one of refuse, pass")]
    [InlineData("      - {name: m, columns: [t.a], mode: dry}\n", "instances[0].masks[0].mode", 6, "expected one of enforce, log-only")]
    [InlineData("      - {name: m, columns: [t.a], unless: {role: [x]}}\n", "instances[0].masks[0].unless.role", 6, "unknown key 'role'")]
    [InlineData("      - {name: m, columns: [t.a], unless: {client: [10.0.0.1/8]}}\n", "instances[0].masks[0].unless.client[0]", 6, "bits set beyond")]
    [InlineData("      - {name: m, columns: [t.a], when: x}\n", "instances[0].masks[0].when", 6, "unknown key 'when'")]
    public void An_error_names_its_key_and_line(string masks, string key, int line, string message)
    {
        ConfigError error = Assert.Single(MaskSets.Errors(masks));

        Assert.Equal(key, error.KeyPath);
        Assert.Equal(line, error.Line);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Two_masks_of_one_name_and_one_column_under_two_masks_are_errors()
    {
        IReadOnlyList<ConfigError> errors = MaskSets.Errors("""
              - {name: m, columns: [public.t.a]}
              - {name: m, columns: [t.b]}
              - {name: other, columns: [public.t.a]}

        """);

        Assert.Equal(2, errors.Count);
        Assert.Contains("mask name 'm' is already used by instances[0].masks[0].name (line 6)", errors[0].Message, StringComparison.Ordinal);
        Assert.Equal(7, errors[0].Line);
        Assert.Contains("column public.t.a is already masked by 'm' (line 6)", errors[1].Message, StringComparison.Ordinal);
        Assert.Equal(8, errors[1].Line);
    }
}
