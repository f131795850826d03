-- dialect: duckdb
-- decision: allow
SELECT a.total, b.total
FROM (SELECT count(*) AS total FROM orders) AS a,
     (SELECT count(*) AS total FROM lineitem) AS b
