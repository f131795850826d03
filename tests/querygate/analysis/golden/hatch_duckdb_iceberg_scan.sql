-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: iceberg_scan()
SELECT *
FROM iceberg_scan('data/x')
