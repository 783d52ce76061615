using System.Text;

namespace PgProxy.Sql.Tests.Fuzzing;

/// <summary>
/// Seeds of the <c>sql</c> fuzz target: statements of the kinds PgProxy's users send through it (psql's
/// meta-commands, pgbench's scripts, pg_dump and restore, Tableau's cursors and temporary tables), with passwords,
/// comments, dollar quotes, escapes, non-ASCII text and nesting, and some the parser or the lexer refuses.
/// </summary>
public static class SqlFuzzSeeds
{
    /// <summary>The statements, each one seed.</summary>
    public static IReadOnlyList<string> Statements { get; } =
    [
        // psql: \d, \dt, \l, \password, \conninfo's queries, and a script.
        "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as \"Type\",\n  pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\"\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam\nWHERE c.relkind IN ('r','p','v','m','S','f','')\n      AND n.nspname <> 'pg_catalog'\n      AND n.nspname !~ '^pg_toast'\n      AND n.nspname <> 'information_schema'\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 1,2;",
        "SELECT\n  d.datname as \"Name\",\n  pg_catalog.pg_get_userbyid(d.datdba) as \"Owner\",\n  pg_catalog.pg_encoding_to_char(d.encoding) as \"Encoding\",\n  pg_catalog.array_to_string(d.datacl, E'\\n') AS \"Access privileges\"\nFROM pg_catalog.pg_database d\nORDER BY 1;",
        "SELECT c.oid,\n  n.nspname,\n  c.relname\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\nWHERE c.relname OPERATOR(pg_catalog.~) '^(orders)$' COLLATE pg_catalog.default\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 2, 3;",
        "ALTER USER app PASSWORD 'SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5c3RvcmVka2V5:c2VydmVya2V5c2VydmVya2V5'",
        "SHOW password_encryption",
        "BEGIN;\nCREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL DEFAULT '', tags text[]);\nINSERT INTO t (name, tags) VALUES ('a', '{x,y}'), ('b', ARRAY['z']) RETURNING id;\nCOMMIT;",
        // pgbench: initialisation and the TPC-B-like script, as sent (variables already replaced) and prepared.
        "create table pgbench_accounts(aid    int not null,bid int,abalance int,filler char(84)) with (fillfactor=100)",
        "copy pgbench_accounts from stdin with (freeze on)",
        "vacuum analyze pgbench_branches",
        "alter table pgbench_branches add primary key (bid)",
        "UPDATE pgbench_accounts SET abalance = abalance + -4213 WHERE aid = 83921;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
        "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 83921, -4213, CURRENT_TIMESTAMP);",
        "BEGIN; SELECT abalance FROM pgbench_accounts WHERE aid = 1; END;",
        // pg_dump's session set-up and a dump's statements.
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        "SELECT pg_catalog.set_config('search_path', '', false);",
        "SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\nSET check_function_bodies = false;\nSET xmloption = content;\nSET client_min_messages = warning;\nSET row_security = off;",
        "CREATE FUNCTION public.add_one(a integer) RETURNS integer\n    LANGUAGE plpgsql IMMUTABLE\n    AS $$\nBEGIN\n  -- a comment; with a semicolon\n  RETURN a + 1;\nEND;\n$$;",
        "CREATE FUNCTION public.tag() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN NEW.s := $q$it's$q$; RETURN NEW; END $body$;",
        "ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_customer_fkey FOREIGN KEY (customer_id) REFERENCES public.customers(id) ON DELETE CASCADE;",
        "COPY public.orders (id, customer_id, total, placed_at) FROM stdin;",
        "SELECT pg_catalog.setval('public.orders_id_seq', 1042, true);",
        "COMMENT ON TABLE public.orders IS 'Orders; one row per basket, it''s here';",
        "CREATE USER MAPPING FOR app SERVER remote OPTIONS (\n    \"user\" 'app',\n    password 'secret'\n);",
        "SELECT c.tableoid, c.oid, c.relname, (SELECT pg_catalog.array_agg(acl ORDER BY row_n) FROM (SELECT acl, row_n FROM pg_catalog.unnest(coalesce(c.relacl,pg_catalog.acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\",c.relowner))) WITH ORDINALITY AS perm(acl,row_n) WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(coalesce(pip.initprivs,pg_catalog.acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\",c.relowner))) AS init(init_acl) WHERE acl = init_acl)) as foo) AS relacl FROM pg_class c LEFT JOIN pg_init_privs pip ON (c.oid = pip.objoid AND pip.classoid = 'pg_class'::regclass AND pip.objsubid = 0) WHERE c.relkind in ('r', 'S', 'v', 'c', 'm', 'f', 'p') ORDER BY c.oid",
        // Tableau: cursors, temporary tables, casts, quoted names with colons.
        "BEGIN;declare \"SQL_CUR0x7f3a1c00\" cursor with hold for SELECT \"Orders\".\"Region\" AS \"Region\",\n  SUM(\"Orders\".\"Sales\") AS \"sum:Sales:ok\"\nFROM \"public\".\"Orders\" \"Orders\"\nGROUP BY 1;fetch 2048 in \"SQL_CUR0x7f3a1c00\"",
        "close \"SQL_CUR0x7f3a1c00\";COMMIT",
        "CREATE LOCAL TEMPORARY TABLE \"#Tableau_37_2_Connect\" (\n\t\"COL\" INTEGER\n\t) ON COMMIT PRESERVE ROWS",
        "DROP TABLE \"#Tableau_37_2_Connect\"",
        "SELECT CAST(EXTRACT(YEAR FROM \"Orders\".\"Order Date\") AS BIGINT) AS \"yr:Order Date:ok\",\n  COUNT(DISTINCT \"Orders\".\"Customer ID\") AS \"ctd:Customer ID:ok\"\nFROM \"public\".\"Orders\" \"Orders\"\nWHERE ((\"Orders\".\"Category\" IN ('Furniture', 'Technology')) AND (\"Orders\".\"Sales\" >= 10.5))\nGROUP BY 1\nHAVING (COUNT(1) > 0)",
        "SELECT NULL::TEXT AS \"Calculation_1\", CAST(TRUNC(((\"Orders\".\"Profit\" / NULLIF(\"Orders\".\"Sales\", 0)) * 100)) AS BIGINT) AS \"pct\" FROM \"public\".\"Orders\" \"Orders\" LIMIT 0",
        "select current_schema()",
        "SELECT \"Orders\".\"Segment\" AS \"Segment\" FROM \"public\".\"Orders\" \"Orders\" WHERE (\"Orders\".\"Order Date\" >= (DATE_TRUNC('MONTH', CAST('2026-12-03 00:00:00' AS TIMESTAMP)) + -11 * INTERVAL '1 MONTH')) GROUP BY 1 ORDER BY 1 NULLS FIRST",
        // Comments, dollar quotes, escapes, constants of every lexical kind, non-ASCII text.
        "/* leading; comment /* nested */ */ SELECT 1 -- trailing; comment\n; SELECT $tag$ a;b $tag$, $$;$$",
        "DO $$BEGIN PERFORM dblink_connect('host=db dbname=app password=secret'); END$$",
        "CREATE ROLE app LOGIN PASSWORD E'se\\'cret' VALID UNTIL 'infinity'",
        "CREATE USER app PASSWORD U&'s\\0065cret' CREATEDB",
        "alter user app with encrypted password $pw$sec'ret$pw$ /* by ops */",
        "SELECT E'a\\'b\\x41\\u00e9', B'1010', X'ff', 1.5e10, .5, 0x1F, 1_000_000, $1::int[], U&\"d\\0061t\\+000061\" UESCAPE '\\'",
        "SELECT 'é😀' AS \"ünï\", name FROM \"表\" WHERE note LIKE '%ß%'",
        "SELECT '\u00e9'::text || 'x' COLLATE \"C\"; SELECT 2",
        // Nesting: parentheses, subqueries, CTEs, windows, rules with bodies.
        "SELECT ((((1 + (2 * (3 - 4))) / 5) % 6) ^ 7)",
        "SELECT * FROM (SELECT * FROM (SELECT a FROM t WHERE b IN (SELECT c FROM u WHERE d = ANY(ARRAY[1,2,3]))) x) y",
        "WITH RECURSIVE r(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM r WHERE n < 100) SELECT sum(n) FROM r",
        "SELECT rank() OVER (PARTITION BY a ORDER BY b DESC NULLS LAST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM t",
        "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)",
        "SELECT jsonb_path_query(doc, '$.items[*] ? (@.price > 10)'), doc->'a'->>'b', doc #> '{a,b}' FROM docs",
        "LISTEN orders; NOTIFY orders, 'payload'; UNLISTEN *",
        "PREPARE p(int, text) AS SELECT $1, $2; EXECUTE p(1, 'a'); DEALLOCATE p",
        "SELECT " + new string('(', 120) + "1" + new string(')', 120),
        "SELECT 1" + string.Concat(Enumerable.Repeat(" + 1", 130)),
        // Refused: syntax and lexical errors, and texts with no statement.
        "SELECT FROM WHERE ; SELECT 2",
        "SELEC 1",
        "SELECT 'unterminated",
        "SELECT 1 /* unterminated",
        "SELECT \"unterminated",
        "SELECT $x$ unterminated",
        "ALTER USER app PASSWORD 'oops",
        "",
        ";;",
        "  -- only a comment",
    ];

    /// <summary>The statements as UTF-8 bytes, as the fuzzer takes them.</summary>
    public static IReadOnlyList<byte[]> All { get; } = [.. Statements.Select(Encoding.UTF8.GetBytes)];
}
