-- dialect: duckdb
-- decision: allow
-- policy: allow_writes=true
CREATE TABLE nation_copy AS SELECT * FROM nation
