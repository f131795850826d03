-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: set_config()
SELECT set_config('role', 'admin', false)
