-- dialect: duckdb
-- decision: reject
-- expect: write-not-allowed error 1:1
CREATE TABLE nation_copy AS SELECT * FROM nation
