-- dialect: duckdb
-- decision: reject
-- expect: generator-too-large error 1:12
-- message: about 100,000,000 rows
-- suggestion: Generate at most 10,000,000 rows
SELECT len(range(100000000)) AS n
