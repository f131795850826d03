-- dialect: duckdb
-- decision: warn
-- expect: exploding-join warn 3:21
-- suggestion: GROUP BY item_id
SELECT t.tag, l.label
FROM tags AS t
JOIN labels AS l ON t.item_id = l.item_id
LIMIT 100
