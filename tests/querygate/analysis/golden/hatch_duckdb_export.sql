-- dialect: duckdb
-- decision: reject
-- expect: statement-not-allowed error 1:1
-- message: EXPORT
EXPORT DATABASE 'dump'
