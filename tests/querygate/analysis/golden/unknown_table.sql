-- dialect: duckdb
-- decision: reject
-- expect: unknown-table error 2:6
-- suggestion: Did you mean nation
SELECT n_name
FROM nations
