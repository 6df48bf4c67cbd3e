#!/bin/sh
# First start of the PostgreSQL container: one database and one login role per service
# (database-per-service: no service can read another's tables). Passwords come from the environment.
set -eu

for service in needs offers matching gateway; do
  var="DUIJIE_$(echo "$service" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  password=$(printenv "$var" || true)
  if [ -z "$password" ]; then
    echo "init-databases: $var is not set" >&2
    exit 1
  fi
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       -v role="duijie_$service" -v db="duijie_$service" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
done
