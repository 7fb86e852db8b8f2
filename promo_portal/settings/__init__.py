"""Settings modules: ``local`` (embedded demo, the default), ``test`` and ``production``."""
