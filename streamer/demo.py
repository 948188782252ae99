"""The demo dataset: products, customers and sales, generated inside the database.

Rows are computed from their id with integer arithmetic, so every load of N rows gives the same
data on PostgreSQL and on SQLite, and a load never sends rows over the connection.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from streamer.database import create_report_engine

logger = logging.getLogger(__name__)

PRODUCTS = 1_000
CUSTOMERS = 10_000
EMBEDDED_SALES_ROWS = 100_000
FIRST_SALE_EPOCH = 1_672_531_200  # 2023-01-01 00:00:00 UTC
SALES_SPAN_SECONDS = 2 * 365 * 24 * 3600  # sales are spread over 2023 and 2024
BATCH_ROWS = 500_000
CATEGORIES = ("books", "garden", "kitchen", "music", "office", "sports", "tools", "toys")
COUNTRIES = ("AT", "BR", "CA", "DE", "ES", "FR", "GB", "IN", "JP", "US")

SCHEMA = {
    "postgresql": (
        "CREATE TABLE products (id integer PRIMARY KEY, name text NOT NULL, category text NOT NULL, "
        "unit_price numeric(10, 2) NOT NULL)",
        "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, country text NOT NULL)",
        "CREATE TABLE sales (id bigint PRIMARY KEY, sold_at timestamptz NOT NULL, "
        "product_id integer NOT NULL, customer_id integer NOT NULL, quantity integer NOT NULL)",
    ),
    "sqlite": (
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, "
        "unit_price REAL NOT NULL)",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL)",
        "CREATE TABLE sales (id INTEGER PRIMARY KEY, sold_at TEXT NOT NULL, "
        "product_id INTEGER NOT NULL, customer_id INTEGER NOT NULL, quantity INTEGER NOT NULL)",
    ),
}

# One batch of sales ids :first..:last. The time step is whole seconds so timestamps stay round.
SALES_BATCH = {
    "postgresql": """
        INSERT INTO sales (id, sold_at, product_id, customer_id, quantity)
        SELECT n, to_timestamp(:epoch + (n - 1) * :step),
               1 + (n * 7919) % :products, 1 + (n * 104729) % :customers, 1 + (n * 31) % 5
        FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n
    """,
    "sqlite": """
        WITH RECURSIVE ids(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM ids WHERE n < :last)
        INSERT INTO sales (id, sold_at, product_id, customer_id, quantity)
        SELECT n, strftime('%Y-%m-%d %H:%M:%S', :epoch + (n - 1) * :step, 'unixepoch') || '+00:00',
               1 + (n * 7919) % :products, 1 + (n * 104729) % :customers, 1 + (n * 31) % 5
        FROM ids
    """,
}


def load(url: str, rows: int, progress: Callable[[int], None] | None = None) -> None:
    """Replace the demo tables in the database at url with a dataset of rows sales."""
    engine = create_report_engine(url)
    dialect = engine.dialect.name
    if dialect not in SCHEMA:
        raise ValueError(f"The demo dataset supports PostgreSQL and SQLite, not {dialect}.")
    try:
        with engine.begin() as connection:
            create_tables(connection, dialect)
            insert_dimensions(connection)
        for first in range(1, rows + 1, BATCH_ROWS):
            last = min(rows, first + BATCH_ROWS - 1)
            with engine.begin() as connection:
                insert_sales(connection, dialect, first, last, rows)
            if progress:
                progress(last - first + 1)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE INDEX sales_sold_at ON sales (sold_at)")
            connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


def create_tables(connection: Connection, dialect: str) -> None:
    for table in ("sales", "customers", "products"):
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    for statement in SCHEMA[dialect]:
        connection.exec_driver_sql(statement)


def insert_dimensions(connection: Connection) -> None:
    products = [
        {
            "id": i,
            "name": f"Product {i:04d}",
            "category": CATEGORIES[i % len(CATEGORIES)],
            "unit_price": round(1 + (i * 37 % 20_000) / 100, 2),
        }
        for i in range(1, PRODUCTS + 1)
    ]
    customers = [
        {"id": i, "name": f"Customer {i:05d}", "country": COUNTRIES[i * 7 % len(COUNTRIES)]}
        for i in range(1, CUSTOMERS + 1)
    ]
    connection.execute(text("INSERT INTO products VALUES (:id, :name, :category, :unit_price)"), products)
    connection.execute(text("INSERT INTO customers VALUES (:id, :name, :country)"), customers)


def insert_sales(connection: Connection, dialect: str, first: int, last: int, total: int) -> None:
    values = {
        "first": first,
        "last": last,
        "epoch": FIRST_SALE_EPOCH,
        "step": max(1, SALES_SPAN_SECONDS // total),
        "products": PRODUCTS,
        "customers": CUSTOMERS,
    }
    connection.execute(text(SALES_BATCH[dialect]), values)


def has_demo_tables(url: str) -> bool:
    engine = create_report_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    return {"products", "customers", "sales"} <= tables


def ensure_demo_database(path: Path) -> None:
    """Create the embedded SQLite demo file if it does not exist yet.

    The file is built under a temporary name and renamed, so a server that starts several
    workers at once never opens a half-built file.
    """
    if path.exists() and has_demo_tables(f"sqlite:///{path}"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("creating the demo database %s with %d sales", path, EMBEDDED_SALES_ROWS)
    handle, temporary = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        load(f"sqlite:///{temporary}", EMBEDDED_SALES_ROWS)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
