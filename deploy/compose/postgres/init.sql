-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d): one
-- database for the ledger and one shared by the relayer replicas and the API, both owned by
-- POSTGRES_USER (ferry). Schemas are created by Alembic when the services start.
CREATE DATABASE ferry_ledger OWNER ferry;
CREATE DATABASE ferry_relayer OWNER ferry;
