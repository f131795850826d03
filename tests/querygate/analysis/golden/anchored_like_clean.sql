-- dialect: duckdb
-- decision: allow
SELECT o_orderkey
FROM orders
WHERE o_comment LIKE 'urgent%'
LIMIT 10
