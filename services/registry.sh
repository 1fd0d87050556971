# Sourced by the scripts: the services of services/registry.txt as bash arrays.
#   services      every service, in start order (the gateway last)
#   port[name]    its registered port
#   api_services  the services behind the gateway (those that own /api paths)
#   databases     the services that own a database, as database names (order_service, ...)
# shellcheck shell=bash
services=() api_services=() databases=()
declare -A port=()
while read -r _name _port _database _paths; do
  [[ -z $_name || $_name == \#* ]] && continue
  services+=("$_name")
  port[$_name]=$_port
  [[ $_database == own ]] && databases+=("${_name//-/_}")
  [[ $_paths != - ]] && api_services+=("$_name")
done <"$(dirname "${BASH_SOURCE[0]}")/registry.txt"
unset _name _port _database _paths
