"""engine_statement: what the engines are sent, or a SqlError (found by mypy: the error
path read an attribute EngineError does not have and raised AttributeError)."""

import pytest

from querygate.errors import SqlError
from querygate.services.warehouses import engine_statement


def test_one_statement_is_re_rendered():
    assert engine_statement("select  1", "duckdb") == "SELECT 1"


@pytest.mark.parametrize("sql", ["select 1; select 2", "select from where ("])
def test_anything_but_one_statement_is_a_sql_error(sql):
    with pytest.raises(SqlError) as caught:
        engine_statement(sql, "duckdb")
    message = str(caught.value)
    assert message[0].isupper() and message.endswith(".")
