-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: read_blob()
SELECT *
FROM read_blob('data/x')
