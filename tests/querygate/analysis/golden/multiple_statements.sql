-- dialect: duckdb
-- decision: reject
-- expect: multiple-statements error 2:1
SELECT 1;
SELECT 2;
