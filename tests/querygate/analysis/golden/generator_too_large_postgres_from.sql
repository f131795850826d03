-- dialect: postgres
-- decision: reject
-- expect: generator-too-large error 2:6
-- message: about 20,000,000 rows
SELECT g
FROM generate_series(1, 2 * 10000000) AS g
