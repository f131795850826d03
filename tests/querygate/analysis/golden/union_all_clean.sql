-- dialect: duckdb
-- decision: allow
SELECT l_orderkey FROM lineitem WHERE l_quantity > 49
UNION ALL
SELECT o_orderkey FROM orders WHERE o_totalprice > 500000
LIMIT 100
