using System.Text;
using PgProxy.Core.Statistics;

namespace PgProxy.Core.Tests.Statistics;

/// <summary>The skeleton that query shapes are cached by: constants out, everything that names something kept.</summary>
public sealed class QueryShapesTests
{
    [Theory]
    [InlineData("SELECT abalance FROM pgbench_accounts WHERE aid = 1;", "SELECT abalance FROM pgbench_accounts WHERE aid = 98765;")]
    [InlineData("SELECT 'a', 1.5", "SELECT 'a much longer string', 22.75")]
    [InlineData("SELECT 'it''s', 1", "SELECT 'x', 2")]
    [InlineData("SELECT E'it\\'s' AS a", "SELECT E'other' AS a")]
    [InlineData("SELECT 1 -- don't\nFROM t", "SELECT 2 -- don't\nFROM t")]
    [InlineData("SELECT \"it's\" FROM t WHERE n = 3", "SELECT \"it's\" FROM t WHERE n = 4")]
    public void Queries_that_differ_only_in_constants_have_one_skeleton(string first, string second) =>
        Assert.Equal(SkeletonOf(first), SkeletonOf(second));

    [Theory]
    [InlineData("SELECT * FROM t1", "SELECT * FROM t2")]
    [InlineData("SELECT $1", "SELECT $2")]
    [InlineData("SELECT \"a1\"", "SELECT \"a2\"")]
    [InlineData("SELECT a FROM t", "SELECT b FROM t")]
    [InlineData("SELECT 1 /* x */", "SELECT 1 /* y */")]
    public void Queries_that_differ_in_names_parameters_or_comments_do_not(string first, string second) =>
        Assert.NotEqual(SkeletonOf(first), SkeletonOf(second));

    [Fact]
    public void A_repeated_shape_is_parsed_once_and_its_normalized_text_keeps_no_constant()
    {
        var shapes = new QueryShapes();
        QueryShape[] first = shapes.Of(Encoding.UTF8.GetBytes("SELECT 'secret' AS s, 41"), Encoding.UTF8);
        QueryShape[] second = shapes.Of(Encoding.UTF8.GetBytes("SELECT 'other' AS s, 42"), Encoding.UTF8);

        Assert.Same(first, second);
        Assert.DoesNotContain("secret", Assert.Single(first).NormalizedText, StringComparison.Ordinal);
    }

    private static string SkeletonOf(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        byte[] into = new byte[bytes.Length];
        return Encoding.UTF8.GetString(into, 0, QueryShapes.Skeleton(bytes, into));
    }
}
