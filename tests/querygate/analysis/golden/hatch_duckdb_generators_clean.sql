-- dialect: duckdb
-- decision: allow
SELECT r.n
FROM range(10) AS r(n)
