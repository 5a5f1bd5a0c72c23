# --- MariaDB: the engine's part of websonic-db (follows websonic-db-common.sh) ---
# shellcheck shell=bash

readonly ENGINE_LABEL=MariaDB
readonly ENGINE_USER=mysql
readonly ENGINE_RESERVED_DATABASES=(mysql information_schema performance_schema sys)
readonly ENGINE_RESERVED_USERS=(root mysql public)
readonly RUN_DIR=/run/mysqld
readonly INIT_SOCKET=$RUN_DIR/init.sock
DB_SERVER_ID=${DB_SERVER_ID:-1}
TEMPORARY_PID=

engine_check_settings() {
	if ! [[ $DB_SERVER_ID =~ ^[0-9]{1,10}$ ]] || ((10#$DB_SERVER_ID < 1 || 10#$DB_SERVER_ID > 4294967295)); then
		die "DB_SERVER_ID must be a number from 1 to 4294967295 (got $(printf %q "$DB_SERVER_ID"))."
	fi
	DB_SERVER_ID=$((10#$DB_SERVER_ID))
}

engine_prepare_runtime() {
	if is_root; then
		install -d -m 0755 -o "$ENGINE_USER" -g "$ENGINE_USER" "$RUN_DIR"
	else
		mkdir -p "$RUN_DIR"
	fi
}

engine_initialised() { [ -d "$DATA_DIR/mysql" ]; }

engine_initdb() {
	local output
	if ! output=$(as_engine mariadb-install-db --user="$ENGINE_USER" --datadir="$INIT_DIR" \
		--auth-root-authentication-method=socket --skip-test-db --skip-name-resolve --force 2>&1 </dev/null); then
		printf '%s\n' "$output" >&2
		die "mariadb-install-db could not make the data directory."
	fi
}

# A server for the initialisation only: no TCP, no binary log, a socket of its own. (A
# background function runs in a subshell: exec makes $! the server's own process.)
engine_start_temporary() {
	local tries
	exec_as_engine mariadbd --datadir="$INIT_DIR" --skip-networking --socket="$INIT_SOCKET" \
		--pid-file="$RUN_DIR/init.pid" --skip-log-bin --server-id="$DB_SERVER_ID" </dev/null &
	TEMPORARY_PID=$!
	for tries in $(seq 120); do
		if as_engine mariadb-admin --user="$ENGINE_USER" --socket="$INIT_SOCKET" --silent \
			ping >/dev/null 2>&1; then
			return
		fi
		kill -0 "$TEMPORARY_PID" 2>/dev/null || die "MariaDB stopped while starting (try $tries)."
		sleep 0.5
	done
	die "MariaDB did not start within 60 seconds."
}

engine_stop_temporary() {
	if [ -n "$TEMPORARY_PID" ]; then
		kill -TERM "$TEMPORARY_PID" 2>/dev/null || true
		wait "$TEMPORARY_PID" || true
		TEMPORARY_PID=
	fi
}

# The SQL goes through the client's standard input, unlogged (no binary log, no general
# log); the password is a string literal with \ and ' escaped by a backslash (the session's
# sql_mode has no NO_BACKSLASH_ESCAPES).
engine_create_site_database() {
	local password=${PASSWORD//\\/\\\\}
	password=${password//\'/\\\'}
	printf '%s\n' \
		"SET SESSION sql_log_bin = 0;" \
		"SET SESSION sql_mode = 'STRICT_ALL_TABLES';" \
		"CREATE DATABASE \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;" \
		"CREATE USER '$DB_USER'@'%' IDENTIFIED BY '$password';" \
		"GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'%';" |
		as_engine mariadb --user="$ENGINE_USER" --socket="$INIT_SOCKET" --batch --silent
}

engine_exec_server() {
	exec_as_engine mariadbd --server-id="$DB_SERVER_ID" "$@"
}

engine_health() {
	as_engine mariadb-admin --user="$ENGINE_USER" ping
}

main "$@"
