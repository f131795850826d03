-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: query_to_xml()
SELECT query_to_xml('select 1', true, true, '')
