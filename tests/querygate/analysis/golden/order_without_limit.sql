-- dialect: duckdb
-- decision: warn
-- expect: unbounded-result warn 1:1
-- expect: order-without-limit warn 3:1
SELECT o_orderkey, o_totalprice
FROM orders
ORDER BY o_totalprice DESC
