-- dialect: postgres
-- decision: reject
-- expect: write-not-allowed error 1:1
WITH gone AS (DELETE FROM region RETURNING r_regionkey)
SELECT count(*) FROM gone
