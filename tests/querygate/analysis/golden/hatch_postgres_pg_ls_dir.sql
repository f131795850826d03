-- dialect: postgres
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: pg_ls_dir()
SELECT *
FROM pg_ls_dir('.')
