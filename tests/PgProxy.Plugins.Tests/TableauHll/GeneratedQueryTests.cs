using System.Text;
using PgProxy.Plugins.TableauHll.Analysis;
using Plugin = PgProxy.Plugins.TableauHll.TableauHll;

namespace PgProxy.Plugins.Tests.TableauHll;

/// <summary>Many generated queries over tables without hll columns: whatever their shape, the text comes back unchanged.</summary>
public sealed class GeneratedQueryTests
{
    private static readonly ColumnTypes NoHll = new ColumnTypes()
        .Table(null, "orders", ("id", false), ("customer", false), ("Total Amount", false))
        .Table("sales", "customers", ("id", false), ("name", false), ("region", false));

    private static readonly string[] Columns = ["id", "customer", "\"Total Amount\"", "o.id", "o.customer", "\"o\".\"Total Amount\"", "c.name", "c.region"];
    private static readonly string[] Froms =
    [
        "orders o",
        "orders AS o JOIN sales.customers c ON c.id = o.customer",
        "\"orders\" \"o\", sales.customers c",
        "(SELECT * FROM orders) o CROSS JOIN (SELECT id, name, region FROM sales.customers) c",
    ];

    private static readonly string[] Noise = ["", " ", "\n  ", " /* count(DISTINCT x) */ ", " -- count(DISTINCT y)\n", "\t"];

    [Fact]
    public void Queries_without_hll_columns_come_back_byte_identical()
    {
        var random = new Random(20261125);
        for (int i = 0; i < 500; i++)
        {
            string query = Generate(random);

            string result = Plugin.Apply(query, QueryAnalyzer.Analyze(query), NoHll);

            Assert.True(ReferenceEquals(query, result), $"changed: {query}");
        }
    }

    private static string Generate(Random random)
    {
        string Pick(string[] from) => from[random.Next(from.Length)];
        string count = random.Next(4) switch
        {
            0 => $"count(DISTINCT{Pick(Noise)} {Pick(Columns)})",
            1 => $"COUNT(DISTINCT CAST({Pick(Columns)} AS TEXT))",
            2 => $"Count( distinct {Pick(Columns)}::text )",
            _ => $"count(DISTINCT {Pick(Columns)}){Pick(Noise)}",
        };
        var query = new StringBuilder();
        if (random.Next(3) == 0)
        {
            query.Append("WITH w AS (SELECT * FROM orders) ");
        }

        query.Append(random.Next(2) == 0 ? "SELECT " : "select ").Append(count);
        query.Append(random.Next(2) == 0 ? " AS \"n: count\"" : "");
        query.Append(Pick(Noise)).Append(", 'count(DISTINCT ' || 'o.id)' AS s");
        query.Append(" FROM ").Append(Pick(Froms));
        if (random.Next(2) == 0)
        {
            query.Append(" WHERE o.id IN (SELECT count(DISTINCT customer) FROM orders GROUP BY id)");
        }

        query.Append(random.Next(2) == 0 ? " GROUP BY 2 HAVING count(DISTINCT o.customer) > 1" : "");
        query.Append(random.Next(2) == 0 ? ";" : "");
        return query.ToString();
    }
}
