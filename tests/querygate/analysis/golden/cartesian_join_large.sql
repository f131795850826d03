-- dialect: duckdb
-- decision: reject
-- expect: cartesian-join error 2:19
-- suggestion: JOIN c ON o.o_custkey = c.c_custkey
SELECT o.o_orderkey, c.c_name
FROM orders AS o, customer AS c
LIMIT 10
