-- dialect: postgres
-- decision: allow
SELECT c.c_name, x.total
FROM customer AS c
CROSS JOIN LATERAL (
  SELECT sum(o.o_totalprice) AS total FROM orders AS o WHERE o.o_custkey = c.c_custkey
) AS x
WHERE c.c_custkey = 7
