-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: pg_terminate_backend()
SELECT pg_terminate_backend(42)
