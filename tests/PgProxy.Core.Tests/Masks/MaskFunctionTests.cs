using System.Net;
using PgProxy.Core.Masks;
using PgProxy.Core.Rules;

namespace PgProxy.Core.Tests.Masks;

/// <summary>What each <c>with</c> function makes of a value, which types it keeps, and who <c>unless</c> exempts.</summary>
public sealed class MaskFunctionTests
{
    private static Mask Only(string with) => MaskSets.Build($"      - {{name: m, columns: [t.a], with: {with}}}\n").Masks[0];

    [Theory]
    [InlineData("alice@example.com", "a***@example.com")]
    [InlineData("x@y", "***@y")]
    [InlineData("no-at-sign", "***")]
    [InlineData("@example.com", "***")]
    [InlineData("👩‍💻dev@example.com", "👩‍💻***@example.com")]
    public void Email_keeps_one_letter_of_a_longer_name_and_the_domain(string value, string masked) => Assert.Equal(masked, Only("email").Apply(value));

    [Theory]
    [InlineData("4111111111111234", 4, "************1234")]
    [InlineData("1234", 4, "****")]
    [InlineData("12", 4, "**")]
    [InlineData("secret", 0, "******")]
    [InlineData("", 2, "")]
    public void Keep_last_masks_all_but_the_last_characters_and_a_short_value_whole(string value, int kept, string masked) =>
        Assert.Equal(masked, Only($"{{keep-last: {kept}}}").Apply(value));

    [Fact]
    public void Hash_is_the_hex_sha256_of_the_utf8_value_the_same_each_time()
    {
        Mask mask = Only("hash");

        Assert.Equal("2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", mask.Apply("foo"));
        Assert.Equal(mask.Apply("été"), mask.Apply("été"));
        Assert.NotEqual(mask.Apply("a"), mask.Apply("b"));
    }

    [Fact]
    public void Constant_null_and_regex_do_what_they_say()
    {
        Assert.Equal("***", Only("{constant: '***'}").Apply("anything"));
        Assert.Null(Only("'null'").Apply("anything"));
        Assert.Equal("call ###-####", Only(@"{regex: '\d', replace: '#'}").Apply("call 555-0100"));
        Assert.Equal("user at example.com", Only(@"{regex: '(\w+)@(\S+)', replace: '$1 at $2'}").Apply("user@example.com"));
    }

    [Fact]
    public void A_regex_past_its_timeout_gives_null_and_is_counted()
    {
        Mask mask = MaskSets.Build("      - {name: m, columns: [t.a], with: {regex: '(a+)+\\1b', replace: x}}\n", "  rule-timeout: 1ms\n").Masks[0];

        Assert.Null(mask.Apply(new string('a', 5000)));
        Assert.Equal(1, mask.Counters.RegexTimeouts);
    }

    [Fact]
    public void Only_null_keeps_a_type_that_is_not_a_string()
    {
        Assert.True(Only("'null'").KeepsTypeCategory('N'));
        foreach (string with in new[] { "hash", "email", "{constant: x}", "{keep-last: 2}", "{regex: a, replace: b}" })
        {
            Assert.True(Only(with).KeepsTypeCategory('S'));
            Assert.False(Only(with).KeepsTypeCategory('N'));
            Assert.False(Only(with).KeepsTypeCategory('D'));
        }
    }

    [Fact]
    public void Unless_exempts_a_session_that_meets_every_key_given()
    {
        MaskSet masks = MaskSets.Build("""
              - {name: dpo, columns: [t.a], unless: {user: [dpo, '/^audit_/']}}
              - {name: office, columns: [t.b], unless: {user: [analyst], client: [10.0.0.0/8]}}
              - {name: all, columns: [t.c]}

        """);

        Assert.Equal([false, true, true], masks.Applying(new RuleSubject("dpo", "crm", null, IPAddress.Loopback)));
        Assert.Equal([false, true, true], masks.Applying(new RuleSubject("audit_7", "crm", null, IPAddress.Loopback)));
        Assert.Equal([true, false, true], masks.Applying(new RuleSubject("analyst", "crm", null, IPAddress.Parse("::ffff:10.1.2.3"))));
        Assert.Equal([true, true, true], masks.Applying(new RuleSubject("analyst", "crm", null, IPAddress.Parse("192.168.1.1"))));
    }
}
