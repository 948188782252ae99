"""Engines for the report database, one per process and short-lived."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool


def create_report_engine(url: str) -> Engine:
    """Return an engine without a pool: each child opens one connection and exits.

    A plain `postgresql://` URL means psycopg2, the driver this project installs; SQLAlchemy 2.1
    would otherwise pick psycopg 3. A URL that names its driver keeps it.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return create_engine(parsed, poolclass=NullPool)
