-- dialect: duckdb
-- decision: reject
-- expect: unbounded-recursive-cte error 1:16
-- suggestion: WHERE r.n < 100
WITH RECURSIVE r AS (
  SELECT 1 AS n
  UNION ALL
  SELECT n + 1 FROM r
)
SELECT n FROM r
