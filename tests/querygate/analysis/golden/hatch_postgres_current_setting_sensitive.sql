-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: current_setting()
SELECT current_setting('data_directory')
