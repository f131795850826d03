-- dialect: postgres
-- decision: allow
WITH RECURSIVE r AS (
  SELECT 1 AS n
  UNION ALL
  SELECT n + 1 FROM r WHERE n < 10
)
SELECT n FROM r
