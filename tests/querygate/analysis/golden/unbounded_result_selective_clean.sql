-- dialect: duckdb
-- decision: allow
SELECT l_orderkey, l_comment
FROM lineitem
WHERE l_orderkey = 42
