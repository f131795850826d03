-- dialect: duckdb
-- decision: allow
SELECT n.n_name, r.r_name
FROM nation AS n
JOIN region AS r ON n.n_regionkey = r.r_regionkey
