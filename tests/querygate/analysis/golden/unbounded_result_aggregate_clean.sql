-- dialect: postgres
-- decision: allow
SELECT l_returnflag, count(*)
FROM lineitem
GROUP BY l_returnflag
