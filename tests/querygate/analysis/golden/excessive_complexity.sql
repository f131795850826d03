-- dialect: duckdb
-- decision: warn
-- policy: max_joins=1
-- expect: excessive-complexity warn 1:1
SELECT c.c_name, o.o_orderdate, n.n_name
FROM customer AS c
JOIN orders AS o ON o.o_custkey = c.c_custkey
JOIN nation AS n ON n.n_nationkey = c.c_nationkey
WHERE c.c_custkey = 10
