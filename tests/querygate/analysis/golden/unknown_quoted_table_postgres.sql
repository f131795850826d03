-- dialect: postgres
-- decision: reject
-- expect: unknown-table error 2:6
SELECT *
FROM "data.csv"
