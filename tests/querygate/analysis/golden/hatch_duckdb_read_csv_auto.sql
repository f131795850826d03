-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: read_csv_auto()
SELECT *
FROM read_csv_auto('data/x')
