"""Per-engine allow-lists of functions, table functions and statement kinds.

An allow-list, not a deny-list: a function the analysis does not know is refused, so a new
engine function that reads files or changes settings is refused until someone decides it is
safe. The default lists are built from

1. every function expression class sqlglot knows (about 570: aggregates, window, date, string,
   math, JSON, array functions...), minus the few classes that reach outside the database
   (file readers and writers, remote AI/ML calls, secrets): ``OUTSIDE_REACHING_CLASSES``;
2. a documented list of plain SQL functions per engine that sqlglot parses as anonymous
   function calls (``DUCKDB_PLAIN_FUNCTIONS``, ``POSTGRES_PLAIN_FUNCTIONS``).

Table functions (a function in FROM) have their own, much shorter list: only generators.
"""

from __future__ import annotations

from functools import cache

from sqlglot import exp


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: sqlglot function classes that read or write files, call remote services or reveal secrets.
OUTSIDE_REACHING_CLASSES: frozenset[str] = frozenset(
    {
        "ReadCSV",
        "ReadParquet",
        "ToFile",
        "Secret",
        "AIAgg",
        "AIClassify",
        "AIEmbed",
        "AIForecast",
        "AIGenerate",
        "AISimilarity",
        "AISummarizeAgg",
        "MLForecast",
        "MLTranslate",
        "Predict",
        "GenerateEmbedding",
        "GenerateText",
        "GenerateTable",
        "VectorSearch",
        "FeaturesAtTime",
        "Anonymous",
        "AnonymousAggFunc",
    }
)

#: Plain DuckDB functions sqlglot does not model as classes, judged harmless (pure functions
#: of their arguments: no files, network, extensions or settings).
DUCKDB_PLAIN_FUNCTIONS: frozenset[str] = _words(
    """
    abs age array_length array_value bit_count bool_and bool_or cardinality ceiling
    century contains date_diff date_part datediff datepart datesub date_sub dayofmonth
    dayofweek dayofyear decade epoch epoch_ms epoch_us epoch_ns era even favg fsum gamma
    gcd hamming hash histogram ilike_escape instr isfinite isinf isnan jaccard
    jaro_similarity jaro_winkler_similarity lcm lgamma like_escape list_aggregate
    list_contains list_distinct list_extract list_filter list_has list_reduce list_sort
    list_transform list_value ln log10 log2 ltrim make_date make_time make_timestamp
    millennium nextafter nfc_normalize not_ilike_escape not_like_escape ord position
    printf prefix regexp_matches regexp_split_to_array rtrim setseed signbit
    split string_split string_split_regex strftime strip_accents strptime suffix
    time_bucket timezone timezone_hour timezone_minute to_centuries to_decades
    to_hours to_microseconds to_milliseconds to_minutes to_months to_seconds to_weeks
    to_years today trunc txid_current ucase lcase unicode weekday weekofyear
    yearweek arbitrary bit_and bit_or bit_xor entropy fsum kahan_sum mad
    product regr_avgx reservoir_quantile sem string_agg sumkahan now every isoyear
    octet_length to_json get_current_time get_current_timestamp
    """
)

#: Plain PostgreSQL functions sqlglot does not model as classes, judged harmless.
POSTGRES_PLAIN_FUNCTIONS: frozenset[str] = _words(
    """
    abs age array_length array_lower array_upper array_position array_positions
    array_remove array_replace array_to_string bit_length bool_and bool_or btrim cardinality
    cbrt ceiling char_length character_length clock_timestamp date_part date_bin
    daterange div every format format_type gcd generate_subscripts initcap int4range
    int8range isfinite justify_days justify_hours justify_interval lcm length ln log10
    lower_inc lower_inf ltrim make_date make_interval make_time make_timestamp
    make_timestamptz md5 min_scale mod num_nonnulls num_nulls numrange octet_length
    overlay position quote_ident quote_literal quote_nullable regexp_match regexp_matches
    regexp_split_to_array regexp_split_to_table rtrim scale setseed sha224 sha256 sha384
    sha512 sign split_part statement_timestamp string_to_array strpos to_ascii to_date
    to_hex to_number to_timestamp transaction_timestamp trim_scale trunc tsrange
    tstzrange unistr upper_inc upper_inf width_bucket jsonb_array_elements
    jsonb_array_elements_text jsonb_array_length jsonb_build_array jsonb_build_object
    jsonb_each jsonb_each_text jsonb_object_keys jsonb_pretty jsonb_typeof json_array_length
    json_build_array json_build_object json_each json_each_text json_object_keys json_typeof
    percentile_cont percentile_disc string_agg xmlagg to_json to_jsonb now
    """
)

#: Plain Spark SQL functions sqlglot does not model as classes, judged harmless. Not here on
#: purpose: ``reflect`` / ``java_method`` / ``try_reflect`` (call any Java static method),
#: ``read_files`` and the other file readers, ``input_file_name`` and friends (reveal paths),
#: ``current_catalog`` is harmless but listed by sqlglot already.
SPARK_PLAIN_FUNCTIONS: frozenset[str] = _words(
    """
    abs acosh asinh atanh bin bit_count bit_get bool_and bool_or cardinality ceiling
    char_length character_length crc32 date_diff datediff dayofmonth dayofweek dayofyear
    decimal e elt every factorial find_in_set format_number format_string getbit hash
    hypot ifnull instr isnan lcase len ln log10 log1p log2 ltrim make_date make_interval
    make_timestamp md5 median mod nanvl negative now nvl nvl2 octet_length overlay pi
    pmod position positive printf quarter regexp_count regexp_instr regexp_substr rint
    rtrim sec sha sha1 sha2 shiftleft shiftright signum sinh soundex string_agg
    timestamp_micros timestamp_millis timestamp_seconds to_char to_number try_add
    try_divide try_multiply try_subtract typeof ucase unix_date unix_micros unix_millis
    unix_seconds weekday weekofyear xxhash64 width_bucket
    """
)

#: Table functions allowed in FROM: row generators and unnesting, nothing that reads outside.
TABLE_FUNCTION_CLASSES: frozenset[str] = frozenset(
    {"GenerateSeries", "ExplodingGenerateSeries", "Unnest", "Explode", "Posexplode"}
)
DUCKDB_TABLE_FUNCTIONS: frozenset[str] = frozenset({"range", "generate_series", "unnest"})
POSTGRES_TABLE_FUNCTIONS: frozenset[str] = frozenset(
    {
        "generate_series",
        "unnest",
        "generate_subscripts",
        "jsonb_array_elements",
        "jsonb_array_elements_text",
        "jsonb_each",
        "jsonb_each_text",
        "json_each",
        "json_each_text",
        "regexp_split_to_table",
    }
)

#: Statement kinds (see ``classify.statement_name``) allowed on each engine; whether a write
#: may run is decided separately by ``Policy.allow_writes``.
DEFAULT_STATEMENTS: frozenset[str] = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE"}
)


def _function_classes() -> list[type[exp.Func]]:
    found: list[type[exp.Func]] = []
    pending: list[type[exp.Func]] = [exp.Func]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


@cache
def known_function_classes() -> frozenset[str]:
    """Names of sqlglot's function classes, minus the ones that reach outside."""
    return frozenset(
        c.__name__ for c in _function_classes() if c.__name__ not in OUTSIDE_REACHING_CLASSES
    )


#: Spark: no plain table function is allowed in FROM (``range`` is not sized by the
#: generator rules on Spark, ``read_files`` reads files); ``explode`` and friends are classes.
SPARK_TABLE_FUNCTIONS: frozenset[str] = frozenset()

_PLAIN = {
    "duckdb": DUCKDB_PLAIN_FUNCTIONS,
    "postgres": POSTGRES_PLAIN_FUNCTIONS,
    "spark": SPARK_PLAIN_FUNCTIONS,
}
_TABLE = {
    "duckdb": DUCKDB_TABLE_FUNCTIONS,
    "postgres": POSTGRES_TABLE_FUNCTIONS,
    "spark": SPARK_TABLE_FUNCTIONS,
}


def plain_functions(engine: str) -> frozenset[str]:
    """The documented plain function names for ``engine`` (``duckdb``, ``postgres``,
    ``spark``; DuckDB's for any other)."""
    return _PLAIN.get(engine, DUCKDB_PLAIN_FUNCTIONS)


def table_functions(engine: str) -> frozenset[str]:
    """The allowed table-function names (lower case) for ``engine``."""
    return _TABLE.get(engine, DUCKDB_TABLE_FUNCTIONS)
