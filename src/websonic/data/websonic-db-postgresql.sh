# --- PostgreSQL: the engine's part of websonic-db (follows websonic-db-common.sh) ---
# shellcheck shell=bash

readonly ENGINE_LABEL=PostgreSQL
readonly ENGINE_USER=postgres
readonly ENGINE_RESERVED_DATABASES=(postgres template0 template1)
readonly ENGINE_RESERVED_USERS=(postgres public)
readonly CONFIG=/etc/websonic-db/postgresql.conf
readonly SOCKET_DIR=/run/postgresql
readonly PORT=5432
PG_BIN=$(echo /usr/lib/postgresql/*/bin)
readonly PG_BIN

engine_check_settings() {
	if [[ ${DB_USER,,} == pg_* ]]; then
		die "DB_USER cannot start with pg_: PostgreSQL keeps those names for itself."
	fi
}

engine_prepare_runtime() {
	if is_root; then
		install -d -m 2775 -o "$ENGINE_USER" -g "$ENGINE_USER" "$SOCKET_DIR"
	else
		mkdir -p "$SOCKET_DIR"
	fi
}

engine_initialised() { [ -s "$DATA_DIR/PG_VERSION" ]; }

engine_initdb() {
	as_engine "$PG_BIN/initdb" --pgdata="$INIT_DIR" --username=postgres --encoding=UTF8 \
		--locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 --no-instructions
}

# A server for the initialisation only: no TCP, the local socket, peer authentication.
engine_start_temporary() {
	as_engine "$PG_BIN/pg_ctl" --pgdata="$INIT_DIR" --wait --silent \
		-o "-c config_file=$CONFIG -c listen_addresses=''" start </dev/null
}

engine_stop_temporary() {
	as_engine "$PG_BIN/pg_ctl" --pgdata="$INIT_DIR" --wait --silent --mode=fast stop
}

# The SQL goes through psql's standard input; the password is a standard string literal
# (standard_conforming_strings is on: only ' needs doubling). Statements are never logged,
# not even with an error, and psql's terse errors do not quote them.
engine_create_site_database() {
	local password=${PASSWORD//\'/\'\'}
	printf '%s\n' \
		"SET log_statement = 'none';" \
		"SET log_min_error_statement = 'panic';" \
		"SET standard_conforming_strings = on;" \
		"SET password_encryption = 'scram-sha-256';" \
		"CREATE ROLE \"$DB_USER\" LOGIN PASSWORD '$password';" \
		"CREATE DATABASE \"$DB_NAME\" OWNER \"$DB_USER\" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8';" |
		as_engine "$PG_BIN/psql" --no-psqlrc --quiet --no-password --set=ON_ERROR_STOP=1 \
			--set=VERBOSITY=terse --host="$SOCKET_DIR" --username=postgres --dbname=postgres
}

engine_exec_server() {
	exec_as_engine "$PG_BIN/postgres" -D "$DATA_DIR" -c config_file="$CONFIG" "$@"
}

engine_health() {
	as_engine "$PG_BIN/pg_isready" --host=127.0.0.1 --port="$PORT" --timeout=5
}

main "$@"
