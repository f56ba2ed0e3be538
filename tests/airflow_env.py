"""Airflow settings for tests, applied before anything imports airflow (import this module first).

A throwaway AIRFLOW_HOME (SQLite metadata DB), the repo's `dags/` as DAGS_FOLDER, no examples.
`migrate()` creates the metadata DB once per process.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DAGS_FOLDER = str(Path(__file__).resolve().parent.parent / "dags")

if "SAM3_TEST_AIRFLOW_HOME" not in os.environ:
    os.environ["SAM3_TEST_AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="af-home-")
    os.environ["AIRFLOW_HOME"] = os.environ["SAM3_TEST_AIRFLOW_HOME"]
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = DAGS_FOLDER
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

_migrated = False


def migrate() -> None:
    global _migrated
    if not _migrated:
        from airflow.utils.db import initdb

        initdb()
        _migrated = True
