-- dialect: duckdb
-- decision: reject
-- expect: write-not-allowed error 1:1
DELETE FROM orders WHERE o_orderkey = 1
