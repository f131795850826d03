-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: glob()
SELECT *
FROM glob('data/x')
