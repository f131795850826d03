-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: pg_read_binary_file()
SELECT pg_read_binary_file('/etc/passwd')
