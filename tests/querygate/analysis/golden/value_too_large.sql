-- dialect: postgres
-- decision: reject
-- expect: value-too-large error 1:8
-- message: about 954 MiB
-- suggestion: at most 256 MiB
SELECT lpad('a', 1e9::int, 'b') AS padded
