-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: pg_cancel_backend()
SELECT pg_cancel_backend(42)
