-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: read_json()
SELECT *
FROM read_json('data/x')
