"""Where a study lives: Optuna storage URLs, opening and creating with one-line errors, locks,
journal repair. The names load on first use (`bench.lazy`)."""

from bench.lazy import lazy_exports

__all__ = [
    "create_or_load_study",
    "is_database",
    "open_storage",
    "redact",
    "repair_journal",
    "resolve_storage",
    "storage_errors",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "create_or_load_study": "bench.sweep.storage.backends",
        "open_storage": "bench.sweep.storage.backends",
        "repair_journal": "bench.sweep.storage.journal",
        **dict.fromkeys(
            ("is_database", "redact", "resolve_storage", "storage_errors"),
            "bench.sweep.storage.urls",
        ),
    },
)
