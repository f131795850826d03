-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: lo_export()
SELECT lo_export(1, '/tmp/x')
