-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: pg_stat_file()
SELECT pg_stat_file('/etc/passwd')
