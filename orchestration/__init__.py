"""Airflow building blocks the DAGs in `dags/` use: our Ray-job operator and trigger, and a deferrable
poll of an engine function (waiting for humans). Generic over what runs; no campaign logic here.

Installed with the project (not under the DAGs folder) so the scheduler, the workers, the triggerer
and the tests all import the same classpaths (`orchestration.ray_jobs.RayJobTrigger`, ...).
"""
