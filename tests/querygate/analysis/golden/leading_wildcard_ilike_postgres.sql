-- dialect: postgres
-- decision: warn
-- expect: leading-wildcard-like warn 3:7
SELECT o_orderkey
FROM orders
WHERE o_comment ILIKE '_urgent'
LIMIT 10
