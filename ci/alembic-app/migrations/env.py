"""Alembic env.py as FastApiv1.6 has it, minus the application imports: the
URL comes from DATABASE_URL, and there is no target metadata (no autogenerate)."""

import os

from alembic import context
from sqlalchemy import create_engine, pool


def url() -> str:
    raw = os.environ["DATABASE_URL"]
    scheme, rest = raw.split("://", 1)
    return "postgresql+psycopg://" + rest if scheme in ("postgres", "postgresql") else raw


def run_migrations_offline() -> None:
    context.configure(url=url(), target_metadata=None, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
