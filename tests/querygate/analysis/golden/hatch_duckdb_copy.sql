-- dialect: duckdb
-- decision: reject
-- expect: statement-not-allowed error 1:1
-- message: COPY
COPY orders TO 'orders.csv'
