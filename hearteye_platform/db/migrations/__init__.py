"""Alembic migrations of the platform database (script_location ``hearteye_platform.db:migrations``)."""
