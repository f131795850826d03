-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: sniff_csv()
SELECT *
FROM sniff_csv('data/x')
