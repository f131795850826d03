-- dialect: duckdb
-- decision: reject
-- expect: statement-not-allowed error 1:1
-- message: ATTACH
ATTACH 'other.db' AS other
