-- dialect: duckdb
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: getenv()
SELECT getenv('HOME')
