-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: lo_import()
SELECT lo_import('/etc/passwd')
