#!/bin/bash
# websonic-db: the entrypoint of WebSonic's database service images (docs/service-images.md).
#
#   websonic-db [serve [SERVER-OPTION...]]   prepare the data directory (as root, the only
#                                            thing done as root), initialise it on first start,
#                                            then exec the server as the engine's own user: it
#                                            is PID 1 and gets the stop signal itself
#   websonic-db health                       exit 0 when the server accepts connections
#
# Settings (environment): DB_NAME, DB_USER (default "site"), DB_PASSWORD_FILE (default
# /run/secrets/db-password). The password is read on first start only, by this script, and
# reaches the database through a pipe: never an argument, an environment variable, a log line
# or a file of its own.
#
# This file is the common part; the engine's part (ENGINE_* settings and engine_* functions)
# follows it in the image.
set -euo pipefail
umask 077

readonly DATA_ROOT=/var/lib/websonic-db
readonly DATA_DIR=$DATA_ROOT/data
readonly INIT_DIR=$DATA_ROOT/data.init
readonly IDENTIFIER='^[A-Za-z_][A-Za-z0-9_]{0,62}$'
DB_NAME=${DB_NAME:-site}
DB_USER=${DB_USER:-site}
DB_PASSWORD_FILE=${DB_PASSWORD_FILE:-/run/secrets/db-password}
PASSWORD=

say() { printf 'websonic-db: %s\n' "$*" >&2; }

die() {
	say "error: $*"
	exit 1
}

is_root() { [ "$EUID" -eq 0 ]; }

# Run a command as the engine's user (when started as root; else as whoever we are).
as_engine() {
	if is_root; then
		setpriv --reuid="$ENGINE_USER" --regid="$ENGINE_USER" --init-groups -- "$@"
	else
		"$@"
	fi
}

exec_as_engine() {
	if is_root; then
		exec setpriv --reuid="$ENGINE_USER" --regid="$ENGINE_USER" --init-groups -- "$@"
	fi
	exec "$@"
}

# check_name VARIABLE VALUE RESERVED...: an identifier the engine does not use itself.
check_name() {
	local variable=$1 value=$2 reserved
	shift 2
	if ! [[ $value =~ $IDENTIFIER ]]; then
		die "$variable must be 1 to 63 letters, digits or _, not starting with a digit" \
			"(got $(printf %q "$value"))."
	fi
	for reserved in "$@"; do
		if [ "${value,,}" = "${reserved,,}" ]; then
			die "$variable cannot be $value: $ENGINE_LABEL uses that name itself."
		fi
	done
}

check_settings() {
	check_name DB_NAME "$DB_NAME" "${ENGINE_RESERVED_DATABASES[@]}"
	check_name DB_USER "$DB_USER" "${ENGINE_RESERVED_USERS[@]}"
	engine_check_settings
}

# The volume may come from another machine or image: everything in it becomes the engine's.
own_data_root() {
	mkdir -p "$DATA_ROOT"
	chmod 0700 "$DATA_ROOT"
	find "$DATA_ROOT" -xdev \( ! -user "$ENGINE_USER" -o ! -group "$ENGINE_USER" \) \
		-exec chown -h "$ENGINE_USER:$ENGINE_USER" {} +
}

read_password() {
	if [ ! -f "$DB_PASSWORD_FILE" ]; then
		die "no password file at $DB_PASSWORD_FILE. The first start creates the database user" \
			"$DB_USER and needs its password: give it as a podman secret" \
			"(--secret NAME,target=db-password) or a read-only file, or set DB_PASSWORD_FILE."
	fi
	if [ ! -r "$DB_PASSWORD_FILE" ]; then
		die "the password file $DB_PASSWORD_FILE cannot be read (by uid $EUID)."
	fi
	PASSWORD=$(<"$DB_PASSWORD_FILE")
	if [ -z "$PASSWORD" ]; then
		die "the password file $DB_PASSWORD_FILE is empty: the first start needs a password."
	fi
}

# The data directory appears only once it is complete: a first start that is interrupted
# leaves data.init behind, which the next start removes and makes again.
initialise() {
	read_password
	say "first start: making the $ENGINE_LABEL data directory $DATA_DIR" \
		"(database $DB_NAME, owned by user $DB_USER)"
	rm -rf "$INIT_DIR"
	as_engine mkdir -m 0700 "$INIT_DIR"
	engine_initdb
	engine_start_temporary
	trap engine_stop_temporary EXIT
	engine_create_site_database
	PASSWORD=
	engine_stop_temporary
	trap - EXIT
	if [ -d "$DATA_DIR" ]; then
		rmdir "$DATA_DIR"
	fi
	as_engine mv -T "$INIT_DIR" "$DATA_DIR"
	sync "$DATA_ROOT"
	say "first start: $ENGINE_LABEL is initialised"
}

prepare_data() {
	if engine_initialised; then
		return
	fi
	if [ -d "$DATA_DIR" ] && [ -n "$(ls -A "$DATA_DIR")" ]; then
		die "$DATA_DIR holds files but no $ENGINE_LABEL data directory: refusing to touch them."
	fi
	initialise
}

serve() {
	check_settings
	if is_root; then
		own_data_root
	fi
	engine_prepare_runtime
	prepare_data
	say "starting $ENGINE_LABEL"
	engine_exec_server "$@"
}

main() {
	local command=${1:-serve}
	if [ $# -gt 0 ]; then
		shift
	fi
	case $command in
	serve) serve "$@" ;;
	health) engine_health ;;
	*) die "unknown command $(printf %q "$command"): use serve [SERVER-OPTION...] or health." ;;
	esac
}
