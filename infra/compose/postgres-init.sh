#!/bin/sh
# Runs once, on an empty data volume: the databases of Airflow (metadata), the engine (campaign
# state store, model registry index) and Label Studio, each with its own owner.
set -eu
for db in airflow sam3 labelstudio; do
  psql -v ON_ERROR_STOP=1 -U postgres <<SQL
CREATE USER $db WITH PASSWORD '$SAM3_DB_PASSWORD';
CREATE DATABASE $db OWNER $db;
SQL
done
