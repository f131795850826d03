-- dialect: postgres
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: dblink()
SELECT *
FROM dblink('host=x', 'select 1') AS t(a int)
