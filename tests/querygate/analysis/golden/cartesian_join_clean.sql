-- dialect: duckdb
-- decision: allow
SELECT n.n_name, r.r_name
FROM nation AS n, region AS r
WHERE n.n_regionkey = r.r_regionkey
