"""Writing many rows fast on PostgreSQL, for bench.scale_seed: COPY from a generator into a
model's table (column names from `_meta`, every NOT NULL column given a value), indexes built
once after a load instead of row by row, blocks of ids, and INSERT … SELECT from a queryset.
"""

import json
from contextlib import contextmanager
from datetime import datetime

from django.db import DatabaseError, connection, transaction


class Table:
    """COPY into one model's table: the named fields from each generated tuple, then a constant for
    every other NOT NULL column (the field's default, now for auto_now fields, "" for blank text)."""

    def __init__(self, model, fields: tuple[str, ...], now: datetime):
        meta = model._meta
        self.table, self.columns, constants = meta.db_table, [meta.get_field(f).column for f in fields], []
        for f in meta.concrete_fields:
            if f.name in fields or f.null or (f.primary_key and f.auto_created):
                continue
            if f.has_default():
                value = f.get_default()
                value = json.dumps(value) if isinstance(value, dict | list) else value
            elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                value = now
            elif f.blank and f.get_internal_type() in ("CharField", "TextField"):
                value = ""
            else:
                raise ValueError(f"{model.__name__}.{f.name} is NOT NULL and the seed gives it no value.")
            self.columns.append(f.column)
            constants.append(value)
        self.constants = tuple(constants)

    def copy(self, rows) -> int:
        quote = connection.ops.quote_name
        sql = f"COPY {quote(self.table)} ({', '.join(quote(c) for c in self.columns)}) FROM STDIN"
        written = 0
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row + self.constants)
                written += 1
        return written


@contextmanager
def indexes_rebuilt(model):
    """Drop the table's secondary indexes and unique constraints for a bulk load and build them
    again afterwards, from their own definitions: one sort per index instead of a million random
    inserts into each (the load itself is several times faster)."""
    table, quote = model._meta.db_table, connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = %s::regclass AND contype = 'u'", [table])
        constraints = cursor.fetchall()
        cursor.execute("SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                       "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary AND NOT EXISTS "
                       "(SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)", [table])
        indexes = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {quote(name)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '256MB'")
            for name, definition in constraints:
                cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
            for _, definition in indexes:
                cursor.execute(definition)
            cursor.execute("RESET maintenance_work_mem")
            cursor.execute(f"ANALYZE {quote(table)}")


@contextmanager
def loading():
    """The session while rows are loaded: commits not waited for (a throwaway database), and
    foreign keys not checked, as the rows are consistent by construction (a superuser's setting;
    without it the load is only slower). Both are set back afterwards: the pages and the
    ingestion run with every check."""
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        try:
            with transaction.atomic():
                cursor.execute("SET session_replication_role = replica")
        except DatabaseError:
            pass
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET session_replication_role")
            cursor.execute("RESET synchronous_commit")


def reserve_ids(model, count: int) -> int:
    """The first of `count` ids taken from the table's identity sequence, for rows whose children
    are written before the rows can be read back."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [model._meta.db_table, model._meta.pk.column])
        [sequence] = cursor.fetchone()
        cursor.execute("SELECT nextval(%s)", [sequence])
        [first] = cursor.fetchone()
        cursor.execute("SELECT setval(%s, %s)", [sequence, first + max(count, 1) - 1])
    return first


def insert_select(model, fields, queryset, unique) -> int:
    """INSERT INTO `model` (`fields`) the rows of `queryset` (its columns in that order), each row
    replacing the one with the same `unique` fields: a roll-up written by the database itself."""
    quote, meta = connection.ops.quote_name, model._meta
    columns = [quote(meta.get_field(f).column) for f in fields]
    keys = [quote(meta.get_field(f).column) for f in unique]
    sql, params = queryset.query.sql_with_params()
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) {sql} "
                       f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}", params)
        return cursor.rowcount
