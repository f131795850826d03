-- dialect: duckdb
-- decision: warn
-- expect: unbounded-result warn 1:1
-- suggestion: LIMIT 1000
SELECT l_orderkey, l_comment
FROM lineitem
