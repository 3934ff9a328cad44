"""Alembic environment: always driven from casemail.db.migrate with a live connection."""

from alembic import context

from casemail.db.models import Base

connection = context.config.attributes["connection"]
sqlite = connection.dialect.name == "sqlite"
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode copies the table (Alembic docs, "batch").
    render_as_batch=sqlite,
    compare_type=True,
)
if sqlite:
    # Batch mode drops and recreates a table; with foreign keys enforced, that fails as soon
    # as another table's rows point at it (SQLite docs, "ALTER TABLE", the 12 steps: turn
    # enforcement off, rebuild, check). The pragma is a no-op inside a transaction, so it is
    # set on the driver's connection (in autocommit mode, see db/engine.py) before Alembic
    # begins one; SQLAlchemy's own execute would begin a transaction first.
    if connection.in_transaction():
        connection.commit()
    connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
try:
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
finally:
    if sqlite:
        if connection.in_transaction():
            connection.commit()
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
