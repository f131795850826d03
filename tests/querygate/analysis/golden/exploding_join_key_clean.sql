-- dialect: duckdb
-- decision: allow
SELECT o.o_orderkey, c.c_name
FROM orders AS o
JOIN customer AS c ON o.o_custkey = c.c_custkey
LIMIT 100
