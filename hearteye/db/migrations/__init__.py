"""Alembic migrations of the platform database (script_location ``hearteye.db:migrations``)."""
