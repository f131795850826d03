-- dialect: duckdb
-- decision: warn
-- expect: leading-wildcard-like warn 3:7
SELECT o_orderkey
FROM orders
WHERE o_comment LIKE '%urgent%'
LIMIT 10
