-- dialect: postgres
-- decision: warn
-- expect: select-star warn 1:8
-- suggestion: o.o_orderkey, o.o_custkey, o.o_orderstatus
SELECT o.*, c.c_name
FROM orders AS o
JOIN customer AS c ON o.o_custkey = c.c_custkey
WHERE o.o_orderkey = 7
