-- dialect: postgres
-- decision: warn
-- expect: cartesian-join warn 3:1
SELECT n.n_name, r.r_name
FROM nation AS n
CROSS JOIN region AS r
