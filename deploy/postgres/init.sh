#!/bin/sh
# Run once by the postgres image on a new data directory: one database per service that
# owns data (the gateway owns none), from the registry of services mounted beside it.
set -eu
while read -r name port database paths; do
  case $name in '' | '#'*) continue ;; esac
  [ "$database" = own ] || continue
  db=$(echo "$name" | tr - _)
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -c "CREATE DATABASE $db"
done </etc/order-system/registry.txt
