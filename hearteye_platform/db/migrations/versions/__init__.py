"""Migration scripts, one per schema revision, applied in order by ``upgrade_database``."""
