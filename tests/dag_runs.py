"""Helpers for DAG tests: the DagBag of `dags/`, a migrated metadata DB, and reading a run's
task states and return values (XCom) back from the metadata DB."""

from __future__ import annotations

from tests import airflow_env


def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=airflow_env.DAGS_FOLDER)


def get_dag(dag_id: str):
    airflow_env.migrate()
    return dag_bag().dags[dag_id]


def task_states(dr) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}


def xcom(dr, task_id: str):
    """The return value task `task_id` pushed in run `dr` (None if none)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(select(XComModel).where(
            XComModel.dag_id == dr.dag_id, XComModel.run_id == dr.run_id,
            XComModel.task_id == task_id, XComModel.key == "return_value")).first()
        return None if row is None else XComModel.deserialize_value(row)
