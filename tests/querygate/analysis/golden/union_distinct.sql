-- dialect: duckdb
-- decision: warn
-- expect: union-distinct warn 2:1
-- suggestion: UNION ALL
SELECT l_orderkey FROM lineitem WHERE l_quantity > 49
UNION
SELECT o_orderkey FROM orders WHERE o_totalprice > 500000
LIMIT 100
