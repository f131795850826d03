-- dialect: duckdb
-- decision: reject
-- expect: statement-not-allowed error 1:1
-- message: SET
SET threads = 64
