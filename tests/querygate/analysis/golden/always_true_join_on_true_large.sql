-- dialect: postgres
-- decision: reject
-- expect: always-true-join error 3:20
SELECT o.o_orderkey
FROM orders AS o
JOIN lineitem AS l ON TRUE
LIMIT 10
