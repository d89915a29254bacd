"""Alembic migrations of the state database; a package so that an installed wheel carries them."""
