-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: read_json_auto()
SELECT *
FROM read_json_auto('data/x')
