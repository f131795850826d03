-- dialect: duckdb
-- decision: reject
-- expect: unbounded-generator error 1:20
-- suggestion: constant bounds
SELECT o_orderkey, range(o_custkey) AS r FROM orders LIMIT 10
