-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: duckdb_settings()
SELECT *
FROM duckdb_settings('data/x')
