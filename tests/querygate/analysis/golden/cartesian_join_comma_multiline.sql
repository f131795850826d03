-- dialect: duckdb
-- decision: warn
-- expect: cartesian-join warn 3:3
-- suggestion: JOIN r ON n.n_regionkey = r.r_regionkey
SELECT n.n_name, r.r_name
FROM nation AS n,
  region AS r
