#!/bin/sh
# websonic-installer (this marker line lets a saved copy re-run itself with sudo)
# WebSonic installer: installs, updates and rolls back one WebSonic site on this server.
#
#   curl -fsSL -H 'Authorization: Bearer CODE' https://PORTAL/install/CUSTOMER/SITE | sudo sh
#   curl -fsSL -H 'Authorization: Bearer CODE' https://PORTAL/install/CUSTOMER/SITE |
#     sudo sh -s -- --dry-run          # CODE: a one-time install code (websonic token code)
#   sh install.sh --site CUSTOMER/SITE --bundle DIR     # what `websonic deploy` runs over SSH
#
# What it does, in this order (nothing changes on the server before step 4):
#   1. reads the site's install plan and checks its Ed25519 signature against the agency's key
#      (pinned at the first install), and the release signature that names the image digest;
#   2. preflight: OS, architecture, CPUs, memory, disk, inodes, ports 80/443, clock;
#   3. checks that the registry answers and accepts the token, and that the image is there;
#   4. installs podman and caddy from the distribution's packages if they are missing;
#   5. pulls the image (and the site's database image) by digest and checks the digests;
#   6. starts the database container, then the new release beside the running one (blue/green),
#      waits for its health path, switches Caddy's upstream with a graceful reload, drains and
#      stops the old release (kept for rollback). A release that fails its health check is
#      removed and the old one keeps serving.
# Everything is logged to /var/log/websonic/CUSTOMER-SITE.log. A second run with the same plan
# changes nothing. /usr/local/sbin/websonic-uninstall-CUSTOMER-SITE removes what it added.
#
# All code is in functions and the last line runs them, and all of it is one brace group that
# the last line closes: sh reads the whole group before it runs any of it, so a download cut
# anywhere (even inside a top-level function's name) is a syntax error and runs nothing.
{

# -- Filled in by the portal when it serves this script (empty when run from a file). --------
WS_PORTAL=''
WS_SITE=''
WS_CODE=''
WS_SIGNING_KEY_B64=''
WS_PORTAL_CA_B64=''
# -- End of the portal's values. --------------------------------------------------------------

ETC=/etc/websonic
LIB=/usr/local/lib/websonic
SBIN=/usr/local/sbin
LOGDIR=/var/log/websonic
UNITS=/etc/systemd/system
CADDY_ETC=/etc/caddy
CADDY_SITES=/etc/caddy/websonic
CERTS_D=/etc/containers/certs.d
PLAN_MAX_AGE=3600
PORT_FIRST=20000
PORT_LAST=29999
PORTS_LOCK=/run/websonic-ports.lock
MARKER='# websonic-installer'
SITE_USER=10001:10001

# Exit codes (documented in docs/installer.md).
E_FAIL=1 E_USAGE=2 E_PREFLIGHT=3 E_VERIFY=4 E_REGISTRY=5 E_HEALTH=6 E_BUSY=7

# ---------------------------------------------------------------------------------------------
# Messages

say() { printf 'websonic: %s\n' "$*"; }
warn() { printf 'websonic: warning: %s\n' "$*"; }

die() {  # die MESSAGE [HINT] [CODE]
	printf 'websonic: error: %s\n' "$1"
	if [ -n "${2:-}" ]; then printf 'websonic: hint: %s\n' "$2"; fi
	[ "${STATUS:-}" = rolled_back ] || STATUS=failed
	exit "${3:-$E_FAIL}"
}

result_line() {  # the one line `websonic deploy` reads back
	printf 'WEBSONIC-RESULT status=%s release=%s slot=%s previous=%s seconds=%s\n' \
		"$1" "${P_RELEASE:-}" "${RESULT_SLOT:-}" "${RESULT_PREVIOUS:-}" "$(elapsed)"
}

elapsed() { echo $(( $(date +%s) - STARTED )); }

usage() {
	cat <<'EOF'
Usage: install.sh [options]
  --site CUSTOMER/SITE   the site (set by the portal's one-liner)
  --bundle DIR           read the plan, its signature, secrets and key from DIR (push mode)
  --portal URL           the WebSonic portal (set by the portal's one-liner)
  --token-file FILE      a file holding this server's install token (else the one-liner's
                         one-time code is exchanged for one)
  --release N            install release N (default: the newest)
  --domain NAME          serve the site at NAME (repeatable; default: the plan's domains,
                         else this server's address)
  --tls internal|acme    certificates from Caddy's internal CA, or from ACME (Let's Encrypt)
  --email ADDRESS        contact address for ACME
  --auto-update          install a systemd timer that applies new signed releases
  --no-auto-update       remove that timer
  --update               (the timer) apply the newest release if it is newer
  --rollback             return to the previous release
  --database-only        set up the site's database alone (before its data is migrated)
  --dry-run              check everything and print what would change; change nothing
  --trust-new-key        accept a new agency signing key (after checking it out of band)
  --health-timeout S     seconds to wait for the new release's health path (default 120)
  --drain-seconds S      seconds the old release keeps serving after the switch (default 3)
  -h, --help             this help
EOF
}

# ---------------------------------------------------------------------------------------------
# Small helpers

is_name() { case $1 in '' | *[!a-z0-9-]*) return 1 ;; *) return 0 ;; esac; }
is_number() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
have() { command -v "$1" >/dev/null 2>&1; }

act() {  # act DESCRIPTION COMMAND...: run it, or only tell it in a dry run
	local what="$1"
	shift
	if [ "$DRY_RUN" = 1 ]; then
		say "would: $what"
		return 0
	fi
	say "$what"
	"$@" || die "failed: $what (exit $?)"
}

put() {  # put PATH MODE GENERATOR [ARGS...]: write the generator's output to PATH
	local path="$1" mode="$2"
	shift 2
	"$@" >"$WORK/put.$$" || die "could not make $path"
	write_file "$path" "$mode" "$WORK/put.$$"
}

write_file() {  # write_file PATH MODE SOURCE: atomically, only when it differs (0: changed)
	local path="$1" mode="$2" source="$3"
	if [ -f "$path" ] && cmp -s "$source" "$path"; then
		rm -f "$source"
		return 1
	fi
	if [ "$DRY_RUN" = 1 ]; then
		say "would: write $path"
		rm -f "$source"
		return 0
	fi
	mkdir -p "$(dirname "$path")" || die "cannot create $(dirname "$path")"
	{ chmod "$mode" "$source" && mv -f "$source" "$path.ws-new" && mv -f "$path.ws-new" "$path"; } ||
		die "cannot write $path"
	CHANGED=1
	return 0
}

b64d() { base64 -d 2>/dev/null; }

random_password() { tr -dc 'A-Za-z0-9' </dev/urandom 2>/dev/null | head -c 32; }

state_get() {  # state_get KEY: a value from the site's state file
	[ -f "$STATE" ] || return 0
	sed -n "s/^$1=//p" "$STATE" | tail -n 1
}

state_set() {  # state_set KEY VALUE ...: update the state file atomically
	[ "$DRY_RUN" = 1 ] && return 0
	local tmp="$STATE.ws-new"
	if [ -f "$STATE" ]; then cp "$STATE" "$tmp"; else : >"$tmp"; fi
	while [ $# -ge 2 ]; do  # replace the key's line in place, or add it at the end
		K=$1 V=$2 awk 'BEGIN {k = ENVIRON["K"]; l = k "=" ENVIRON["V"]}
			index($0, k "=") == 1 {print l; f = 1; next} {print} END {if (!f) print l}' \
			"$tmp" >"$tmp.2" && mv -f "$tmp.2" "$tmp" ||
			die "cannot update $STATE"
		shift 2
	done
	if [ -f "$STATE" ] && cmp -s "$tmp" "$STATE"; then rm -f "$tmp" && return 0; fi
	chmod 600 "$tmp" && mv -f "$tmp" "$STATE" || die "cannot write $STATE"
}

# ---------------------------------------------------------------------------------------------
# Arguments, root, lock, log

parse_args() {
	SITE=$WS_SITE PORTAL=$WS_PORTAL TOKEN_FILE='' BUNDLE='' RELEASE='' DOMAINS='' TLS=''
	EMAIL='' AUTO_UPDATE='' MODE=install DRY_RUN=0 TRUST_NEW_KEY=0 HEALTH_TIMEOUT=120 DRAIN=3
	DATABASE_ONLY=0
	while [ $# -gt 0 ]; do
		case $1 in
		--site) need_value "$@" && SITE=$2 && shift ;;
		--bundle) need_value "$@" && BUNDLE=$2 && shift ;;
		--portal) need_value "$@" && PORTAL=$2 && shift ;;
		--token-file) need_value "$@" && TOKEN_FILE=$2 && shift ;;
		--release) need_value "$@" && RELEASE=$2 && shift ;;
		--domain) need_value "$@" && DOMAINS="${DOMAINS:+$DOMAINS }$2" && shift ;;
		--tls) need_value "$@" && TLS=$2 && shift ;;
		--email) need_value "$@" && EMAIL=$2 && shift ;;
		--auto-update) AUTO_UPDATE=1 ;;
		--no-auto-update) AUTO_UPDATE=0 ;;
		--update) MODE=update ;;
		--rollback) MODE=rollback ;;
		--database-only) DATABASE_ONLY=1 ;;
		--dry-run) DRY_RUN=1 ;;
		--trust-new-key) TRUST_NEW_KEY=1 ;;
		--health-timeout) need_value "$@" && HEALTH_TIMEOUT=$2 && shift ;;
		--drain-seconds) need_value "$@" && DRAIN=$2 && shift ;;
		-h | --help) usage && exit 0 ;;
		*) usage && die "unknown option: $1" "" "$E_USAGE" ;;
		esac
		shift
	done
	check_args
}

need_value() {  # need_value OPTION [VALUE...]: the option must be followed by its value
	[ $# -ge 2 ] || die "$1 needs a value" "See: install.sh --help" "$E_USAGE"
}

check_args() {
	local customer="${SITE%%/*}" site="${SITE#*/}"
	if [ "$customer/$site" != "$SITE" ] || ! is_name "$customer" || ! is_name "$site"; then
		die "--site must be CUSTOMER/SITE (lowercase letters, digits, -), got '$SITE'" "" "$E_USAGE"
	fi
	CUSTOMER=$customer NAME="$customer-$site" CONF="$ETC/sites/$customer-$site"
	STATE="$CONF/state"
	[ -z "$RELEASE" ] || is_number "$RELEASE" || die "--release must be a number" "" "$E_USAGE"
	is_number "$HEALTH_TIMEOUT" || die "--health-timeout must be a number of seconds" "" "$E_USAGE"
	is_number "$DRAIN" || die "--drain-seconds must be a number of seconds" "" "$E_USAGE"
	case $TLS in '' | internal | acme) ;; *) die "--tls must be internal or acme" "" "$E_USAGE" ;; esac
	for d in $DOMAINS; do
		case $d in *[!a-z0-9.-]* | .* | *..*) die "invalid --domain '$d'" "" "$E_USAGE" ;; esac
	done
	if [ -n "$BUNDLE" ]; then
		[ -f "$BUNDLE/plan" ] || die "no plan in --bundle $BUNDLE" "" "$E_USAGE"
	elif [ "$MODE" != rollback ] && [ -z "$PORTAL" ] && [ ! -f "$ETC/sites/$NAME/remote" ]; then
		die "no --portal or --bundle given" "Use the one-liner from the portal's download page." \
			"$E_USAGE"
	fi
}

need_root() {
	[ "$(id -u)" = 0 ] && return 0
	if [ -f "$0" ] && grep -q "^$MARKER" "$0" 2>/dev/null && have sudo; then
		exec sudo -- sh "$0" "$@"
	fi
	die "the installer needs root" "Run it with sudo: curl -fsSL '…' | sudo sh" "$E_USAGE"
}

take_lock() {
	LOCK="/run/websonic-$NAME.lock"
	if mkdir "$LOCK" 2>/dev/null; then
		echo $$ >"$LOCK/pid"
		return 0
	fi
	local pid
	pid=$(cat "$LOCK/pid" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		LOCK=''
		die "another installer run for $SITE is going on (pid $pid)" "Wait for it to end." "$E_BUSY"
	fi
	say "taking over the lock of an interrupted run (pid ${pid:-unknown})"
	rm -rf "$LOCK" && mkdir "$LOCK" && echo $$ >"$LOCK/pid" || die "cannot take $LOCK"
}

start_log() {
	if [ "$DRY_RUN" = 1 ]; then LOG="$WORK/dry-run.log"; else
		mkdir -p "$LOGDIR" && chmod 700 "$LOGDIR" || die "cannot create $LOGDIR"
		LOG="$LOGDIR/$NAME.log"
	fi
	mkfifo "$WORK/log.fifo" || die "cannot create a pipe in $WORK"
	# -p: when the SSH connection that started us drops, go on writing the log, and finish.
	tee -p -a "$LOG" <"$WORK/log.fifo" &
	TEE_PID=$!
	exec >"$WORK/log.fifo" 2>&1
	say "$(date -u +%Y-%m-%dT%H:%M:%SZ) $MODE of $SITE$([ "$DRY_RUN" = 1 ] && echo ' (dry run)')"
}

cleanup() {
	local code=$?
	trap - EXIT INT TERM HUP
	if [ -n "${STATUS:-}" ]; then result_line "$STATUS"; fi
	if [ -n "${TEE_PID:-}" ]; then
		exec >/dev/null 2>&1
		wait "$TEE_PID" 2>/dev/null
	fi
	[ -n "${LOCK:-}" ] && rm -rf "$LOCK"
	[ -n "${WORK:-}" ] && rm -rf "$WORK"
	exit "$code"
}

# ---------------------------------------------------------------------------------------------
# The plan: fetched from the portal or read from a bundle, then verified

load_inputs() {
	if [ -n "$BUNDLE" ]; then
		for f in plan plan.sig secrets.env signing.pub.pem auth.json ca.pem install.sh install.sh.sig \
			remote token; do
			if [ -f "$BUNDLE/$f" ]; then cp "$BUNDLE/$f" "$WORK/$f" || die "cannot read $BUNDLE/$f"; fi
		done
		if [ -f "$WORK/remote" ]; then  # for the updater: where and with what it fetches plans
			PORTAL=$(sed -n 's/^portal=//p' "$WORK/remote")
			TOKEN=$(tr -d ' \n\r' <"$WORK/token")
		fi
	else
		load_remote_config
		fetch_inputs
	fi
	[ -f "$WORK/secrets.env" ] || : >"$WORK/secrets.env"
	chmod 600 "$WORK/secrets.env"
	choose_signing_key
}

load_remote_config() {  # the portal, CA and install token: saved at install, or for the one-liner
	local saved="$ETC/sites/$NAME/remote"
	if [ -f "$saved" ]; then
		[ -n "$PORTAL" ] || PORTAL=$(sed -n 's/^portal=//p' "$saved")
		if [ -z "$WS_CODE" ] && [ -z "$TOKEN_FILE" ]; then TOKEN_FILE="$ETC/sites/$NAME/token"; fi
		[ -n "$WS_PORTAL_CA_B64" ] || [ ! -f "$ETC/sites/$NAME/portal-ca.pem" ] ||
			cp "$ETC/sites/$NAME/portal-ca.pem" "$WORK/ca.pem"
	fi
	[ -n "$PORTAL" ] || die "this server does not know the WebSonic portal of $SITE" \
		"It was installed by the agency over SSH: ask it (websonic deploy/rollback), or give --portal and --token-file." \
		"$E_USAGE"
	case $PORTAL in https://* | http://*) ;; *) die "invalid portal URL '$PORTAL'" "" "$E_USAGE" ;; esac
	PORTAL=${PORTAL%/}
	if [ -n "$WS_PORTAL_CA_B64" ]; then printf '%s' "$WS_PORTAL_CA_B64" | b64d >"$WORK/ca.pem"; fi
	if [ -n "$WS_SIGNING_KEY_B64" ]; then
		printf '%s' "$WS_SIGNING_KEY_B64" | b64d >"$WORK/signing.pub.pem"
	fi
	: >"$WORK/curl.conf"
	if [ -s "$WORK/ca.pem" ]; then printf 'cacert = "%s"\n' "$WORK/ca.pem" >"$WORK/curl.conf"; fi
	if [ -n "$TOKEN_FILE" ]; then
		[ -r "$TOKEN_FILE" ] || die "cannot read the token file $TOKEN_FILE" "" "$E_USAGE"
		TOKEN=$(tr -d ' \n\r' <"$TOKEN_FILE")
	elif [ -n "$WS_CODE" ]; then
		exchange_code
	fi
	[ -n "$TOKEN" ] || die "no install token" \
		"Use the one-liner of the portal's download page, with a new install code." "$E_USAGE"
	portal_auth "Basic $(printf '%s:%s' "$CUSTOMER" "$TOKEN" | base64 | tr -d '\n')"
}

portal_auth() {  # portal_auth 'SCHEME CREDENTIALS': what portal_get sends (never on a command line)
	printf 'header = "Authorization: %s"\n' "$1" >"$WORK/portal-auth.conf"
	chmod 600 "$WORK/portal-auth.conf"
}

exchange_code() {  # the one-liner's one-time code, used up, for this server's own install token
	local query=''
	[ "$DRY_RUN" = 0 ] || query='?dry_run=1'  # a token that expires with the code: not kept
	portal_auth "Bearer $WS_CODE"
	say "exchanging the one-time install code for this server's install token"
	portal_get "install/$CUSTOMER/${SITE#*/}/token$query" "$WORK/token.new" post
	TOKEN=$(tr -d ' \n\r' <"$WORK/token.new")
	rm -f "$WORK/token.new"
	case $TOKEN in wst_*) ;; *) die "the portal's answer is not an install token" "" "$E_FAIL" ;; esac
}

renew_token() {  # the saved token, renewed when 14 days old: saved first, then used (by which
	# the portal revokes the old one); if anything fails before, the old one stays good
	local file="$ETC/sites/$NAME/token" new
	[ "$DRY_RUN" = 0 ] && [ "$TOKEN_FILE" = "$file" ] && [ -f "$file" ] || return 0
	[ -n "$(find "$file" -mtime +14 2>/dev/null)" ] || return 0
	say "renewing this server's install token"
	portal_get "install/$CUSTOMER/${SITE#*/}/token" "$WORK/token.new" post
	new=$(tr -d ' \n\r' <"$WORK/token.new")
	case $new in wst_*) ;; *) die "the portal's answer is not an install token" "" "$E_FAIL" ;; esac
	printf '%s\n' "$new" >"$WORK/token.new"
	write_file "$file" 600 "$WORK/token.new" || true
	TOKEN=$new
	portal_auth "Basic $(printf '%s:%s' "$CUSTOMER" "$TOKEN" | base64 | tr -d '\n')"
}

portal_get() {  # portal_get PATH OUTPUT [post]: PORTAL/PATH with portal_auth; dies with the reason
	local code rc method=''
	[ "${3:-}" != post ] || method='--data-binary @/dev/null'
	# shellcheck disable=SC2086
	code=$(curl -sS --proto '=https,http' --connect-timeout 10 --max-time 120 $method \
		--config "$WORK/curl.conf" --config "$WORK/portal-auth.conf" -o "$2" -w '%{http_code}' \
		"$PORTAL/$1" 2>"$WORK/curl.err")
	rc=$?
	if [ $rc -ne 0 ]; then
		die "cannot reach the portal at $PORTAL: $(head -n 1 "$WORK/curl.err")" \
			"Check this server's network route (and DNS, firewall) to the portal." "$E_REGISTRY"
	fi
	case $code in
	200) return 0 ;;
	401 | 403) die "the portal refused the install code or token (HTTP $code)" \
		"It may be wrong, expired, used or revoked: ask the agency for a new install code." \
		"$E_REGISTRY" ;;
	404) die "the portal has no $1 for this token (HTTP 404)" \
		"Check the site name and release number." "$E_FAIL" ;;
	*) die "the portal answered HTTP $code for $1" "" "$E_FAIL" ;;
	esac
}

fetch_inputs() {  # the plan (its signature on its last line), the secrets, the installer
	local base="install/$CUSTOMER/${SITE#*/}" query=''
	[ -z "$RELEASE" ] || query="?release=$RELEASE"
	if [ "$MODE" = rollback ]; then query="?release=$(state_get previous_release)"; fi
	renew_token
	say "fetching the install plan from $PORTAL"
	portal_get "$base/plan$query" "$WORK/plan.signed"
	sed '$d' "$WORK/plan.signed" >"$WORK/plan"
	sed -n '$s/^signature=//p' "$WORK/plan.signed" >"$WORK/plan.sig"
	[ -s "$WORK/plan.sig" ] || die "the portal's plan carries no signature" "" "$E_VERIFY"
	portal_get "$base/secrets" "$WORK/secrets.env"
	portal_get "install.sh" "$WORK/install.sh"
	portal_get "install.sh.sig" "$WORK/install.sh.sig"
}

choose_signing_key() {
	local pinned="$ETC/signing.pub.pem"
	if [ ! -s "$WORK/signing.pub.pem" ]; then
		[ -f "$pinned" ] || die "no signing key to check the plan with" "" "$E_VERIFY"
		cp "$pinned" "$WORK/signing.pub.pem"
	fi
	if [ -f "$pinned" ] && ! cmp -s "$pinned" "$WORK/signing.pub.pem" && [ "$TRUST_NEW_KEY" != 1 ]; then
		die "the agency's signing key is not the one pinned at the first install ($pinned)" \
			"If the agency told you (out of band) that it changed its key, run again with --trust-new-key." \
			"$E_VERIFY"
	fi
	KEY="$WORK/signing.pub.pem"
}

verify_signature() {  # verify_signature FILE BASE64_SIGNATURE_FILE
	b64d <"$2" >"$2.bin" || return 1
	openssl pkeyutl -verify -pubin -inkey "$KEY" -rawin -in "$1" -sigfile "$2.bin" >/dev/null 2>&1
}

verify_plan() {
	have openssl || ensure_packages openssl
	have openssl || die "openssl is needed to check signatures (apt-get install openssl)" "" "$E_VERIFY"
	verify_signature "$WORK/plan" "$WORK/plan.sig" ||
		die "the install plan's signature does not verify: refusing to install anything" \
			"The plan was altered or not made by the agency's WebSonic." "$E_VERIFY"
	read_plan
	[ "$P_SITE" = "$SITE" ] || die "the plan is for $P_SITE, not $SITE" "" "$E_VERIFY"
	check_plan_age
	verify_release
	if [ -f "$WORK/install.sh.sig" ]; then
		verify_signature "$WORK/install.sh" "$WORK/install.sh.sig" ||
			die "the installer's own signature does not verify" "" "$E_VERIFY"
	fi
	say "plan verified: $SITE release $P_RELEASE, image $P_DIGEST"
}

check_plan_age() {  # a signed plan is good for an hour: an old one could be replayed
	local age=$(( $(date +%s) - P_ISSUED_AT ))
	[ "$age" -le "$PLAN_MAX_AGE" ] ||
		die "the plan was made $age s ago (or this server's clock is ahead): refusing an old plan" \
			"Fetch or push it again; if the clock is wrong, enable time sync." "$E_VERIFY"
}

refuse_downgrade() {  # an older release only when asked for by number (or a rollback)
	local active
	active=$(state_get active_release)
	[ -n "$active" ] && [ -z "$BUNDLE" ] && [ -z "$RELEASE" ] && [ "$P_RELEASE" -lt "$active" ] ||
		return 0
	die "the portal offers release $P_RELEASE, older than release $active serving here: refused" \
		"To go back on purpose: --release $P_RELEASE, or --rollback." "$E_VERIFY"
}

read_plan() {  # the plan's values into P_*, each checked against the grammar before any use
	P_FORMAT='' P_VOLUMES='' P_ENV='' P_SECRETS='' P_DOMAINS='' P_DB=none P_DB_MODE=container
	P_DB_IMAGE='' P_DB_DIGEST='' P_DB_NAME='' P_DB_USER='' P_DB_PORT='' P_TLS=internal P_EMAIL=''
	P_REGISTRY_INSECURE=0 P_REQUIRE_OS='' P_REQUIRE_ARCH='' P_ISSUED_AT=0 P_LIMIT_MEMORY=''
	P_LIMIT_PIDS='' P_DB_LIMIT_MEMORY='' P_DB_LIMIT_PIDS='' P_SITE='' P_NAME='' P_RELEASE=''
	P_REGISTRY='' P_IMAGE='' P_DIGEST='' P_PAYLOAD='' P_SIGNATURE='' P_KIND='' P_PORT=''
	P_HEALTH='' P_DATA_DIR='' P_REQUIRE_CPUS='' P_REQUIRE_MEMORY='' P_REQUIRE_DISK=''
	P_REQUIRE_INODES=''
	while IFS= read -r line || [ -n "$line" ]; do
		plan_line "${line%%=*}" "${line#*=}"
	done <"$WORK/plan"
	[ "$P_FORMAT" = websonic-plan/1 ] || die "unknown plan format '$P_FORMAT' (update the installer)" \
		"" "$E_VERIFY"
	is_number "$P_RELEASE" && is_number "$P_PORT" && is_name "$P_NAME" ||
		die "the plan is malformed" "" "$E_VERIFY"
	[ "$P_NAME" = "$NAME" ] || die "the plan names $P_NAME, expected $NAME" "" "$E_VERIFY"
	check_plan_values
}

# The grammar of every value a plan carries to this server: the patterns of
# src/websonic/sites/grammar.py (the same text; a test compares), read by grep -E in the C
# locale. The plan is signed, and WebSonic checked each value when it read the site's
# manifest and when it made the plan: this third check keeps a forged or buggy plan from
# ever reaching a unit file, a podman argument or a path.
RE_VOLUME_NAME='[a-z0-9][a-z0-9-]{0,62}'
RE_PATH='(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127})+'
RE_ENV_NAME='[A-Za-z_][A-Za-z0-9_]{0,127}'
RE_HEALTH='/[A-Za-z0-9._~/%-]{0,200}(\?[A-Za-z0-9._~=&%-]{0,200})?'
RE_DOMAIN='([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{1,59})'
RE_IDENTIFIER='[A-Za-z_][A-Za-z0-9_]{0,62}'
RE_DIGEST='sha256:[0-9a-f]{64}'
RE_HOST_PORT='(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?'
RE_EMAIL='[A-Za-z0-9._%+-]{1,64}@([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}'
RE_SITE='[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*'
RE_BASE64='[A-Za-z0-9+/=]*'
RE_OS='[a-z]+:[0-9.]+( [a-z]+:[0-9.]+)*'
RE_ARCH='[a-z0-9_]+( [a-z0-9_]+)*'
SYSTEM_FOLDERS='/bin /boot /dev /etc /lib /lib32 /lib64 /libx32 /proc /run /sbin /sys /usr /var/lock /var/run'
SITE_CODE=/srv/site

check_plan_values() {  # every value against the grammar; a plan outside it is refused (E_VERIFY)
	plan_value site "$P_SITE" "$RE_SITE"
	plan_value registry "$P_REGISTRY" "$RE_HOST_PORT"
	plan_value digest "$P_DIGEST" "$RE_DIGEST"
	[ "$P_IMAGE" = "$P_REGISTRY/$P_SITE@$P_DIGEST" ] || refuse_value image "$P_IMAGE"
	plan_value payload "$P_PAYLOAD" "$RE_BASE64"
	plan_value signature "$P_SIGNATURE" "$RE_BASE64"
	plan_value health "$P_HEALTH" "$RE_HEALTH"
	plan_path data_dir "$P_DATA_DIR"
	plan_value require_os "$P_REQUIRE_OS" "$RE_OS"
	plan_value require_arch "$P_REQUIRE_ARCH" "$RE_ARCH"
	plan_choice kind "$P_KIND" static php python node containerfile
	plan_choice tls "$P_TLS" internal acme
	plan_choice registry_insecure "$P_REGISTRY_INSECURE" 0 1
	[ -z "$P_EMAIL" ] || plan_value acme_email "$P_EMAIL" "$RE_EMAIL"
	plan_number port "$P_PORT" 1024 65535
	plan_number release "$P_RELEASE" 1
	plan_number issued_at "$P_ISSUED_AT" 0
	plan_number require_cpus "$P_REQUIRE_CPUS" 0
	plan_number require_memory_mib "$P_REQUIRE_MEMORY" 0
	plan_number require_disk_mib "$P_REQUIRE_DISK" 0
	plan_number require_inodes "$P_REQUIRE_INODES" 0
	plan_number limit_memory_mib "$P_LIMIT_MEMORY" 6
	plan_number limit_pids "$P_LIMIT_PIDS" 1
	check_plan_volumes
	check_plan_env
	check_plan_names
	check_plan_database
}

check_plan_names() {  # secrets and domains: space-separated lists, checked as a whole first
	local domain
	[ -z "$P_SECRETS" ] || plan_value secret "$P_SECRETS" "( $RE_ENV_NAME)+"
	[ -z "$P_DOMAINS" ] || plan_value domain "$P_DOMAINS" "( $RE_DOMAIN)+"
	P_DOMAINS=${P_DOMAINS# }
	for domain in $P_DOMAINS; do  # no space or wildcard in them: checked above
		[ ${#domain} -le 253 ] || refuse_value domain "$domain"
	done
}

check_plan_database() {
	plan_choice database "$P_DB" none sqlite postgresql mariadb
	plan_choice database_mode "$P_DB_MODE" none external container
	site_has_database || return 0
	plan_value database_digest "$P_DB_DIGEST" "$RE_DIGEST"
	[ "$P_DB_IMAGE" = "$P_REGISTRY/$P_SITE@$P_DB_DIGEST" ] ||
		refuse_value database_image "$P_DB_IMAGE"
	plan_value database_name "$P_DB_NAME" "$RE_IDENTIFIER"
	plan_value database_user "$P_DB_USER" "$RE_IDENTIFIER"
	plan_number database_port "$P_DB_PORT" 1 65535
	plan_number database_limit_memory_mib "$P_DB_LIMIT_MEMORY" 6
	plan_number database_limit_pids "$P_DB_LIMIT_PIDS" 1
}

site_has_database() {  # a database container of the site's release runs beside it
	[ "$P_DB_MODE" = container ] && [ -n "$P_DB_IMAGE" ] && case $P_DB in postgresql | mariadb) ;;
	*) false ;; esac
}

check_plan_volumes() {  # NAME:PATH lines: names and paths of the grammar, none in another
	local volume name path names='' paths='' other
	while IFS= read -r volume; do
		[ -n "$volume" ] || continue
		name=${volume%%:*} path=${volume#*:}
		plan_value "volume name" "$name" "$RE_VOLUME_NAME"
		plan_path "volume $name" "$path"
		for other in $SYSTEM_FOLDERS; do
			! paths_nested "$path" "$other" ||
				refuse_value "volume $name" "$path" "it would be mounted on or under $other"
		done
		[ "$path" != "$SITE_CODE" ] || refuse_value "volume $name" "$path" "it would hide the site's code"
		case " $names " in *" $name "*) refuse_value "volume name" "$name" "it is named twice" ;; esac
		for other in $paths; do  # checked paths: no space, no wildcard
			! paths_nested "$path" "$other" ||
				refuse_value "volume $name" "$path" "it overlaps the volume at $other"
		done
		names="$names $name" paths="$paths $path"
	done <<EOF
$P_VOLUMES
EOF
}

paths_nested() {  # paths_nested A B: A is B, or inside it, or B inside A
	case $1 in "$2" | "$2"/*) return 0 ;; esac
	case $2 in "$1"/*) return 0 ;; esac
	return 1
}

check_plan_env() {  # NAME=VALUE lines: a name of the grammar, a value without control characters
	local line
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		case $line in *=*) ;; *) refuse_value env "$line" "it has no '='" ;; esac
		plan_value "env name" "${line%%=*}" "$RE_ENV_NAME"
		case ${line#*=} in *[[:cntrl:]]*)
			refuse_value "env ${line%%=*}" "(not shown)" "it holds a control character" ;;
		esac
	done <<EOF
$P_ENV
EOF
}

plan_value() {  # plan_value KEY VALUE ERE: VALUE is one line that the pattern matches whole
	case $2 in *'
'*) refuse_value "$1" "$2" ;; esac
	printf '%s\n' "$2" | LC_ALL=C grep -Eqx -- "$3" || refuse_value "$1" "$2"
}

plan_path() {  # plan_path KEY PATH: an absolute path of the grammar, at most 255 characters
	plan_value "$1" "$2" "$RE_PATH"
	[ ${#2} -le 255 ] || refuse_value "$1" "$2" "it is longer than 255 characters"
}

plan_number() {  # plan_number KEY VALUE MIN [MAX]
	plan_value "$1" "$2" '[0-9]{1,10}'
	[ "$2" -ge "$3" ] && [ "$2" -le "${4:-9999999999}" ] || refuse_value "$1" "$2" "out of range"
}

plan_choice() {  # plan_choice KEY VALUE CHOICE...
	local key="$1" value="$2"
	shift 2
	case " $* " in *" $value "*) [ -n "$value" ] && return 0 ;; esac
	refuse_value "$key" "$value" "not one of: $*"
}

refuse_value() {  # refuse_value KEY VALUE [WHY]
	local shown
	shown=$(printf '%s' "$2" | LC_ALL=C tr -c '[:print:]' '?')
	die "the plan's $1 '$shown' is refused${3:+: $3}: refusing to install anything" \
		"The plan does not hold to WebSonic's grammar of values (docs/site-manifest.md)." "$E_VERIFY"
}

plan_line() {  # plan_line KEY VALUE
	local nl='
'
	case $1 in
	format) P_FORMAT=$2 ;;
	site) P_SITE=$2 ;;
	name) P_NAME=$2 ;;
	release) P_RELEASE=$2 ;;
	issued_at) P_ISSUED_AT=$2 ;;
	registry) P_REGISTRY=$2 ;;
	registry_insecure) P_REGISTRY_INSECURE=$2 ;;
	image) P_IMAGE=$2 ;;
	digest) P_DIGEST=$2 ;;
	payload) P_PAYLOAD=$2 ;;
	signature) P_SIGNATURE=$2 ;;
	kind) P_KIND=$2 ;;
	port) P_PORT=$2 ;;
	health) P_HEALTH=$2 ;;
	volume) P_VOLUMES="$P_VOLUMES$2$nl" ;;
	env) P_ENV="$P_ENV$2$nl" ;;
	secret) P_SECRETS="$P_SECRETS $2" ;;
	domain) P_DOMAINS="$P_DOMAINS $2" ;;  # the leading space goes once checked
	tls) P_TLS=$2 ;;
	acme_email) P_EMAIL=$2 ;;
	database) P_DB=$2 ;;
	database_mode) P_DB_MODE=$2 ;;
	database_image) P_DB_IMAGE=$2 ;;
	database_digest) P_DB_DIGEST=$2 ;;
	database_version) P_DB_VERSION=$2 ;;
	database_name) P_DB_NAME=$2 ;;
	database_user) P_DB_USER=$2 ;;
	database_port) P_DB_PORT=$2 ;;
	data_dir) P_DATA_DIR=$2 ;;
	require_os) P_REQUIRE_OS=$2 ;;
	require_arch) P_REQUIRE_ARCH=$2 ;;
	require_cpus) P_REQUIRE_CPUS=$2 ;;
	require_memory_mib) P_REQUIRE_MEMORY=$2 ;;
	require_disk_mib) P_REQUIRE_DISK=$2 ;;
	require_inodes) P_REQUIRE_INODES=$2 ;;
	limit_memory_mib) P_LIMIT_MEMORY=$2 ;;
	limit_pids) P_LIMIT_PIDS=$2 ;;
	database_limit_memory_mib) P_DB_LIMIT_MEMORY=$2 ;;
	database_limit_pids) P_DB_LIMIT_PIDS=$2 ;;
	esac
}

verify_release() {  # the release signature names the plan's image digest (and database image)
	printf '%s' "$P_PAYLOAD" | b64d >"$WORK/release.payload"
	printf '%s' "$P_SIGNATURE" >"$WORK/release.sig"
	verify_signature "$WORK/release.payload" "$WORK/release.sig" ||
		die "the release signature does not verify: refusing to install release $P_RELEASE" "" \
			"$E_VERIFY"
	grep -q "\"docker-manifest-digest\":\"$P_DIGEST\"" "$WORK/release.payload" ||
		die "the release signature does not cover the image digest $P_DIGEST" "" "$E_VERIFY"
	grep -q "\"docker-reference\":\"$SITE:$P_RELEASE\"" "$WORK/release.payload" ||
		die "the release signature is not for $SITE:$P_RELEASE" "" "$E_VERIFY"
	if [ "$P_DB_MODE" = container ] && [ -n "$P_DB_DIGEST" ]; then
		grep -q "\"$P_DB\":\"$P_DB_DIGEST\"" "$WORK/release.payload" ||
			die "the release signature does not cover the database image $P_DB_DIGEST" "" "$E_VERIFY"
	fi
}

# ---------------------------------------------------------------------------------------------
# Preflight: the same checks as `websonic host check`

preflight() {
	PREFLIGHT_FAILED=0
	say "preflight:"
	check_os
	check_arch
	check_minimum cpus "$(nproc 2>/dev/null || echo 0)" "${P_REQUIRE_CPUS:-1}" "" \
		"Give the server more CPUs."
	check_minimum memory "$(memory_mib)" $(( ${P_REQUIRE_MEMORY:-0} * 9 / 10 )) " MiB" \
		"Give the server more memory (needs ${P_REQUIRE_MEMORY:-0} MiB)."
	check_disk
	check_ports
	check_clock
	check_packages
	[ "$PREFLIGHT_FAILED" = 0 ] ||
		die "this server does not meet $SITE's requirements (see the checks above)" \
			"Fix what failed, then run the installer again. Nothing was changed." "$E_PREFLIGHT"
}

report() {  # report STATUS NAME FOUND [HINT]
	printf 'websonic:   %-5s %-9s %s\n' "$1" "$2" "$3"
	if [ "$1" = FAIL ]; then
		PREFLIGHT_FAILED=1
		[ -z "${4:-}" ] || printf 'websonic:         %s\n' "$4"
	fi
}

check_os() {
	local id='' version='' want min
	if [ -r /etc/os-release ]; then
		id=$(sed -n 's/^ID=//p' /etc/os-release | tr -d '"')
		version=$(sed -n 's/^VERSION_ID=//p' /etc/os-release | tr -d '"')
	fi
	for want in ${P_REQUIRE_OS:-debian:12 ubuntu:22.04}; do
		min=${want#*:}
		if [ "${want%%:*}" = "$id" ] && version_at_least "$version" "$min"; then
			report pass os "$id $version"
			return 0
		fi
	done
	report FAIL os "${id:-unknown} $version" "Supported: ${P_REQUIRE_OS:-debian:12 ubuntu:22.04}."
}

check_packages() {  # what the run installs, and whether it fetches the package lists first
	local missing
	# shellcheck disable=SC2046 # one word per package
	missing=$(missing_packages $(runtime_packages))
	if [ -z "$missing" ]; then
		report pass packages "all installed"
	elif package_lists_fresh; then
		report pass packages "to install:$missing"
	else
		report pass packages "to install:$missing, after apt-get update (the package lists are missing or older than a day)"
	fi
}

version_at_least() {  # version_at_least HAVE WANT (dotted numbers)
	[ -n "$1" ] || return 1
	[ "$(printf '%s\n%s\n' "$2" "$1" | sort -t. -k1,1n -k2,2n -k3,3n | head -n 1)" = "$2" ]
}

check_arch() {
	local arch
	arch=$(uname -m)
	case " ${P_REQUIRE_ARCH:-x86_64} " in
	*" $arch "*) report pass arch "$arch" ;;
	*) report FAIL arch "$arch" "The site's images are built for ${P_REQUIRE_ARCH:-x86_64}." ;;
	esac
}

check_minimum() {  # check_minimum NAME FOUND MINIMUM UNIT HINT
	if [ "${2:-0}" -ge "$3" ] 2>/dev/null; then report pass "$1" "$2$4"; else
		report FAIL "$1" "$2$4" "$5"
	fi
}

memory_mib() {  # MemTotal, or the cgroup's memory limit when it is lower (containers, VPSes)
	local total limit
	total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo 2>/dev/null)
	for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
		limit=$(cat "$f" 2>/dev/null) || continue
		is_number "$limit" || continue
		limit=$(( limit / 1048576 ))
		if [ "$limit" -lt "${total:-0}" ]; then total=$limit; fi
	done
	echo "${total:-0}"
}

check_disk() {
	local p="$P_DATA_DIR" free inodes
	while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done
	free=$(df -Pk "$p" 2>/dev/null | awk 'NR==2 {print int($4 / 1024)}')
	inodes=$(df -Pi "$p" 2>/dev/null | awk 'NR==2 {print $4}')
	check_minimum disk "${free:-0}" "${P_REQUIRE_DISK:-0}" " MiB free on $p" \
		"Free or add disk space where $P_DATA_DIR lives (needs $P_REQUIRE_DISK MiB)."
	case $inodes in '' | *[!0-9]*) inodes=${P_REQUIRE_INODES:-0} ;; esac  # e.g. btrfs: '-'
	check_minimum inodes "$inodes" "${P_REQUIRE_INODES:-0}" " free" "Free inodes on $p."
}

check_ports() {
	local port holder
	for port in 80 443; do
		holder=$(port_holder "$port")
		case $holder in
		'') report pass "port $port" free ;;
		caddy) report pass "port $port" "caddy (the reverse proxy WebSonic uses)" ;;
		*) report FAIL "port $port" "in use by ${holder}" \
			"Stop the service listening on port $port (see: ss -ltnp); Caddy must bind it." ;;
		esac
	done
}

port_holder() {  # port_holder PORT: '' when free, else the listening program's name (or '?')
	if have ss; then
		ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:(("\([^"]*\)".*/\1/p' | head -n 1 |
			grep . || { [ -z "$(ss -ltnH "sport = :$1" 2>/dev/null)" ] || echo '?'; }
		return 0
	fi
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p {f = 1} END {exit !f}' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null && echo '?'
}

check_clock() {
	local now skew
	now=$(date +%s)
	skew=$(( P_ISSUED_AT - now ))
	if [ "$skew" -gt 300 ]; then
		report FAIL clock "$skew s behind the agency's" "Enable time sync (systemd-timesyncd or chrony)."
	else
		report pass clock "$(date -u +%H:%M:%SZ)"
	fi
}

# ---------------------------------------------------------------------------------------------
# The registry: reachable, token accepted, image present (before anything changes)

registry_scheme() { if [ "$P_REGISTRY_INSECURE" = 1 ]; then echo http; else echo https; fi; }

registry_check() {  # credentials go only to the plan's registry, over HTTPS unless it says not
	local base realm service code token proto='=https'
	case $P_REGISTRY in '' | *[!A-Za-z0-9.:-]*)
		die "the plan's registry '$P_REGISTRY' is not a host[:port]" "" "$E_VERIFY" ;;
	esac
	if ! have curl; then  # a deploy pushed over SSH to a server that has no curl yet
		ensure_packages curl ca-certificates
		[ "$DRY_RUN" = 0 ] || { say "would: check the registry once curl is installed"; return 0; }
	fi
	base="$(registry_scheme)://$P_REGISTRY"
	[ "$P_REGISTRY_INSECURE" != 1 ] || proto='=http'
	registry_auth
	registry_curl_ca
	code=$(curl -sS --proto "$proto" --connect-timeout 10 --max-time 30 \
		--config "$WORK/ca-curl.conf" -o /dev/null -D "$WORK/v2.headers" -w '%{http_code}' \
		"$base/v2/" 2>"$WORK/curl.err") ||
		die "cannot reach the registry at $P_REGISTRY: $(head -n 1 "$WORK/curl.err")" \
			"Check this server's network route (DNS, firewall, proxy) to $P_REGISTRY." "$E_REGISTRY"
	realm=$(sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: *Bearer .*realm="\([^"]*\)".*/\1/p' \
		"$WORK/v2.headers" | tr -d '\r')
	service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' "$WORK/v2.headers" | tr -d '\r')
	[ "$code" = 401 ] && [ -n "$realm" ] ||
		die "$P_REGISTRY does not answer like a WebSonic registry (HTTP $code on /v2/)" "" "$E_REGISTRY"
	realm_is_on "$base" "$realm" ||
		die "the registry's token realm '$realm' is not on $base: the token is not sent there" \
			"WebSonic's realm is on its public address (WEBSONIC_PUBLIC_URL): ask the agency." \
			"$E_REGISTRY"
	code=$(curl -sS --proto "$proto" --max-time 30 --config "$WORK/ca-curl.conf" \
		--config "$WORK/registry-curl.conf" -o "$WORK/token.json" -w '%{http_code}' -G \
		--data-urlencode "service=$service" --data-urlencode "scope=repository:$SITE:pull" \
		"$realm" 2>"$WORK/curl.err")
	[ "$code" = 200 ] || die "the registry refused the token (HTTP $code)" \
		"The token may be wrong, expired or revoked: ask the agency for a new one." "$E_REGISTRY"
	token=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$WORK/token.json")
	printf 'header = "Authorization: Bearer %s"\n' "$token" >"$WORK/bearer.conf"
	registry_has "$base" "$P_DIGEST" "release $P_RELEASE"
	[ -z "$P_DB_DIGEST" ] || [ "$P_DB_MODE" != container ] ||
		registry_has "$base" "$P_DB_DIGEST" "the $P_DB image"
	say "registry $P_REGISTRY: reachable, token accepted, images present"
}

registry_has() {  # registry_has BASE DIGEST WHAT
	local code accept='application/vnd.oci.image.manifest.v1+json'
	code=$(curl -sS --max-time 30 --config "$WORK/ca-curl.conf" --config "$WORK/bearer.conf" -I -o /dev/null \
		-H "Accept: $accept" -w '%{http_code}' "$1/v2/$SITE/manifests/$2" 2>/dev/null)
	[ "$code" = 200 ] || die "the registry has no $3 ($2): HTTP $code" "" "$E_REGISTRY"
}

registry_curl_ca() {  # a curl config trusting the private portal CA, if there is one
	: >"$WORK/ca-curl.conf"
	if [ -s "$WORK/ca.pem" ]; then printf 'cacert = "%s"\n' "$WORK/ca.pem" >"$WORK/ca-curl.conf"; fi
}

registry_auth() {  # credentials for curl and podman (for the plan's registry only), from the
	# token or the bundle's auth.json
	local auth
	if [ -f "$WORK/auth.json" ]; then
		auth=$(sed -n 's/.*"auth": *"\([^"]*\)".*/\1/p' "$WORK/auth.json" | head -n 1)
	else
		auth=$(printf '%s:%s' "$CUSTOMER" "$TOKEN" | base64 | tr -d '\n')
	fi
	case $auth in '' | *[!A-Za-z0-9+/=]*) die "no registry credentials to pull with" "" "$E_REGISTRY" ;; esac
	printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$P_REGISTRY" "$auth" >"$WORK/auth.json"
	printf 'header = "Authorization: Basic %s"\n' "$auth" >"$WORK/registry-curl.conf"
	chmod 600 "$WORK/auth.json" "$WORK/registry-curl.conf"
}

realm_is_on() {  # realm_is_on BASE REALM: REALM is a plain URL under BASE (scheme, host, port)
	case $2 in "$1"/*) ;; *) return 1 ;; esac
	case $2 in *[!A-Za-z0-9:/._~%?=+-]*) return 1 ;; esac
	return 0
}

# ---------------------------------------------------------------------------------------------
# Packages

ensure_packages() {  # ensure_packages PACKAGE...: apt-get install the missing ones
	local missing
	missing=$(missing_packages "$@")
	[ -n "$missing" ] || return 0
	refresh_package_lists
	if [ "$DRY_RUN" = 1 ]; then
		say "would: install packages:$missing"
		return 0
	fi
	say "installing packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# An earlier run killed during an install leaves dpkg half-done: finish that first.
	dpkg --configure -a || die "dpkg --configure -a failed" "See the messages above."
	installed_package_names >"$WORK/packages.before"
	# shellcheck disable=SC2086
	if ! apt_get install --no-install-recommends $missing; then
		[ "$APT_REFRESHED" = 0 ] || die "could not install:$missing" "Check the server's package sources."
		refresh_package_lists now
		# shellcheck disable=SC2086
		apt_get install --no-install-recommends $missing ||
			die "could not install:$missing" "Check the server's package sources."
	fi
	# Every package this install added, dependencies included, for the uninstall script (apt's
	# autoremove keeps some, e.g. gnupg, which apt itself suggests).
	mkdir -p "$ETC" && installed_package_names | comm -13 "$WORK/packages.before" - \
		>>"$ETC/installed-packages"
	CHANGED=1
}

installed_package_names() {  # one per line, sorted (for comm)
	dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null | awk '$1 == "ii" {print $2}' |
		LC_ALL=C sort -u
}

missing_packages() {  # missing_packages PACKAGE...: " a b" of those dpkg does not have installed
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			printf ' %s' "$p"
	done
}

# A minimal or container-made server ships no package lists, and lists older than a day may
# name versions the mirror has dropped: they are fetched once per run, before the first install.
APT_REFRESHED=0
APT_LISTS=/var/lib/apt/lists

package_lists_fresh() {  # the newest package list is less than a day old
	[ -n "$(find "$APT_LISTS" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null |
		head -n 1)" ]
}

refresh_package_lists() {  # refresh_package_lists [now]: apt-get update, once, when needed
	[ "$APT_REFRESHED" = 0 ] || return 0
	[ "${1:-}" = now ] || ! package_lists_fresh || return 0
	APT_REFRESHED=1
	if [ "$DRY_RUN" = 1 ]; then
		say "would: refresh the package lists (apt-get update): they are missing or older than a day"
		return 0
	fi
	say "refreshing the package lists (apt-get update)"
	apt_get update || die "apt-get update failed: the server's package lists could not be fetched" \
		"Check the server's package sources (/etc/apt/sources.list*) and its network access."
}

apt_get() {  # waits for another apt/dpkg run (e.g. unattended-upgrades) instead of failing
	apt-get -y -q -o DPkg::Lock::Timeout=300 "$@"
}

# What a site needs on the server: podman with runc and its netavark network backend (the
# database's fixed address needs it: CNI refuses an address outside its lease range) with the
# iptables it runs but does not depend on (Debian's netavark 1.4: "netavark: No such file or
# directory" without it), Caddy, and rsync where files are copied into the site's volumes.
RUNTIME_PACKAGES='podman runc netavark aardvark-dns iptables caddy curl ca-certificates iproute2'

ensure_runtime() {
	# shellcheck disable=SC2046 # one word per package
	ensure_packages $(runtime_packages)
	[ "$DRY_RUN" = 1 ] && return 0
	have podman || die "podman is not available after installing it"
	have caddy || die "caddy is not available after installing it"
	check_podman_version
	ensure_network_backend
}

PODMAN_MIN=4.3  # the units' --sdnotify=conmon and netavark's static addresses

check_podman_version() {  # the distribution's podman may be older (Ubuntu 22.04 has 3.4)
	local version
	version=$(podman --version 2>/dev/null | awk '{print $NF}')
	version_at_least "$version" "$PODMAN_MIN" ||
		die "podman ${version:-(unknown version)} is installed; WebSonic needs podman $PODMAN_MIN or later" \
			"Install podman $PODMAN_MIN or later from the distribution's backports or a newer release, then run again." \
			"$E_PREFLIGHT"
}

runtime_packages() {  # one word per package, split by the caller
	echo "$RUNTIME_PACKAGES"
	if site_has_volumes; then echo rsync; fi
}

site_has_volumes() { [ -n "$(printf '%s' "$P_VOLUMES" | tr -d '[:space:]')" ]; }

# podman 4 picks CNI when netavark was missing the first time it ran, and keeps it: a drop-in
# makes netavark the backend. Containers made with CNI would lose their networks: refused.
NETWORK_CONF=/etc/containers/containers.conf.d/websonic-network.conf

ensure_network_backend() {
	local backend
	backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null)
	[ "$backend" != netavark ] || return 0
	if [ -n "$(podman ps -aq 2>/dev/null)" ]; then
		die "podman on this server uses the '${backend:-unknown}' network backend and has containers; WebSonic needs netavark" \
			"Remove those containers or move them to netavark (podman system reset removes everything), then run again." \
			"$E_PREFLIGHT"
	fi
	say "setting podman's network backend to netavark (was: ${backend:-unknown})"
	put "$NETWORK_CONF" 644 printf '%s\n' "$MARKER" '[network]' 'network_backend = "netavark"' ||
		true
	backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null)
	[ "$backend" = netavark ] || die "podman still uses the '${backend:-unknown}' network backend" \
		"See $NETWORK_CONF and: podman info"
}

# ---------------------------------------------------------------------------------------------
# Images

pull_images() {
	pull_image "$P_IMAGE" "$P_DIGEST"
	if [ "$P_DB_MODE" = container ] && [ -n "$P_DB_IMAGE" ]; then
		pull_image "$P_DB_IMAGE" "$P_DB_DIGEST"
	fi
}

pull_image() {  # pull_image REFERENCE DIGEST: pull by digest, then check what podman stored
	local found tls=''
	if podman image exists "$1" 2>/dev/null; then
		found=$(podman image inspect --format '{{.Digest}}' "$1" 2>/dev/null)
		[ "$found" = "$2" ] && return 0
	fi
	[ "$DRY_RUN" = 1 ] && say "would: pull $1" && return 0
	[ "$P_REGISTRY_INSECURE" = 1 ] && tls='--tls-verify=false'
	say "pulling $1"
	# shellcheck disable=SC2086
	podman pull -q $tls --authfile "$WORK/auth.json" "$1" >/dev/null ||
		die "could not pull $1" "See the messages above (network, token, disk space)." "$E_REGISTRY"
	found=$(podman image inspect --format '{{.Digest}}' "$1" 2>/dev/null)
	if [ "$found" != "$2" ]; then
		podman rmi -f "$1" >/dev/null 2>&1
		die "the pulled image's digest is $found, not the signed $2: removed, nothing run" "" \
			"$E_VERIFY"
	fi
}

# ---------------------------------------------------------------------------------------------
# Configuration files of the site

site_paths() {
	DATA="${P_DATA_DIR:-/var/lib/websonic}/sites/$NAME"
	NETWORK="websonic-$NAME"
	DB_ADDRESS=''  # the database's fixed address on NETWORK (ensure_network)
}

write_config() {
	[ "$DRY_RUN" = 1 ] || { mkdir -p "$CONF" && chmod 700 "$ETC" "$ETC/sites" "$CONF"; } ||
		die "cannot create $CONF"
	put "$CONF/env" 600 printf '%s' "$P_ENV" || true
	write_secrets
	write_volumes
	save_installer_files
}

write_secrets() {  # only the secrets the plan names, each NAME=value; mode 600
	local name line
	: >"$WORK/secrets.want"
	for name in $P_SECRETS; do
		if [ "$P_DB_MODE" = container ] && is_database_variable "$name"; then continue; fi
		line=$(grep "^$name=" "$WORK/secrets.env" | tail -n 1)
		[ -n "$line" ] || [ "$P_DB_MODE" = container ] ||
			warn "secret $name has no value yet (set it with: websonic site secret set $SITE $name)"
		[ -z "$line" ] || printf '%s\n' "$line" >>"$WORK/secrets.want"
	done
	write_file "$CONF/secrets.env" 600 "$WORK/secrets.want" || true
}

is_database_variable() {  # set by the installer from the database it runs (database.env)
	[ -n "$P_DB_IMAGE" ] || return 1
	case $1 in
	DATABASE_URL | PGHOST | PGPORT | PGDATABASE | PGUSER | PGPASSWORD) return 0 ;;
	DB_HOST | DB_PORT | DB_NAME | DB_USER | DB_PASSWORD) return 0 ;;
	esac
	return 1
}

write_volumes() {  # a folder per volume (names checked by check_plan_values)
	local volume name
	while IFS= read -r volume; do
		[ -n "$volume" ] || continue
		name=${volume%%:*}
		is_name "$name" || die "invalid volume name '$name' in the plan" "" "$E_VERIFY"
		[ ! -L "$DATA/volumes/$name" ] && [ ! -L "$DATA/volumes" ] && [ ! -L "$DATA" ] ||
			die "$DATA/volumes/$name or a folder above it is a symbolic link: refusing to mount it" \
				"Something other than WebSonic changed $DATA: check it." "$E_VERIFY"
		[ -d "$DATA/volumes/$name" ] && continue
		act "create volume $name in $DATA/volumes" make_volume "$DATA/volumes/$name"
	done <<EOF
$P_VOLUMES
EOF
}

make_volume() {  # owned by the site's user (uid 10001 in every WebSonic image)
	mkdir -p "$1" && chown -h 10001:10001 "$1" && chmod 750 "$1"
}

save_installer_files() {  # the pinned key, the installer itself, the portal's address
	local pinned="$ETC/signing.pub.pem"
	put "$pinned" 644 cat "$KEY" || true
	if [ -f "$WORK/install.sh" ]; then put "$LIB/install.sh" 755 cat "$WORK/install.sh" || true; fi
	[ -n "$PORTAL" ] || return 0
	put "$CONF/remote" 600 printf 'portal=%s\n' "$PORTAL" || true
	if [ -n "$TOKEN" ]; then put "$CONF/token" 600 printf '%s\n' "$TOKEN" || true; fi
	if [ -s "$WORK/ca.pem" ]; then put "$CONF/portal-ca.pem" 644 cat "$WORK/ca.pem" || true; fi
}

registry_ca() {  # podman trusts a private portal CA for this registry only
	[ -s "$WORK/ca.pem" ] || return 0
	put "$CERTS_D/$P_REGISTRY/ca.crt" 644 cat "$WORK/ca.pem" || true
}

# ---------------------------------------------------------------------------------------------
# The database container

database() {
	[ "$P_DB_MODE" = container ] || return 0
	case $P_DB in postgresql | mariadb) ;; *) return 0 ;; esac
	ensure_network
	db_password
	db_env
	if database_image_changes; then
		prepare_database_update
		return 0
	fi
	if put "$UNITS/websonic-$NAME-db.service" 644 database_unit; then
		systemd_reload
		DB_CHANGED=1
	fi
	state_set database_digest "$P_DB_DIGEST" database_engine "$P_DB" \
		database_version "${P_DB_VERSION:-$(state_get database_version)}"
	start_database
}

database_unit() { unit_file "$NAME-db" "$P_DB database of $SITE" "$(db_run_args)" ""; }

# A new database image (same engine, same major version: check_database_change) replaces the
# running one only with the new release, and only for good if that release passes its health
# check: update_database keeps the previous unit and a copy of the data, restore_database puts
# both back, commit_database drops them once the new release serves.

database_image_changes() {  # the plan names another image than the one the database runs
	local running
	running=$(state_get database_digest)
	[ -n "$running" ] && [ "$running" != "$P_DB_DIGEST" ] && [ -f "$UNITS/websonic-$NAME-db.service" ]
}

prepare_database_update() {  # the running database serves on until the new release starts
	DB_UPDATE=1
	say "the $P_DB database image changes from $(state_get database_digest) to $P_DB_DIGEST:" \
		"it is replaced with the new release, and put back if that release is not healthy"
	check_snapshot_space
	start_database
	[ "$DATABASE_ONLY" = 1 ] || return 0
	update_database none
	[ "$DRY_RUN" = 1 ] || commit_database
}

check_snapshot_space() {  # the copy of the data needs its size free beside it
	local need free
	need=$(du -sk "$DATA/database" 2>/dev/null | awk '{print int($1 / 1024) + 1}')
	free=$(df -Pk "$DATA" 2>/dev/null | awk 'NR==2 {print int($4 / 1024)}')
	[ "${free:-0}" -gt "${need:-0}" ] ||
		die "updating the database needs ${need:-?} MiB free in $DATA for a copy of its data, to go back to; ${free:-0} MiB are free" \
			"Free disk space where $DATA lives, then run again. The database was not touched." \
			"$E_PREFLIGHT"
}

update_database() {  # update_database SLOT: stop, copy the data, start the new image, healthy
	local previous
	previous=$(state_get database_digest)
	if [ "$DRY_RUN" = 1 ]; then
		say "would: stop the $P_DB database, copy its data to $DATA/database.previous, start" \
			"image $P_DB_DIGEST (put back if it or the new release is not healthy)"
		return 0
	fi
	cp -p "$UNITS/websonic-$NAME-db.service" "$CONF/db.service.previous" ||
		die "cannot keep a copy of the database's unit in $CONF"
	state_set database_previous_digest "$previous" \
		database_previous_version "$(state_get database_version)" database_update_slot "$1"
	say "stopping the $P_DB database (image $previous)"
	stop_unit "websonic-$NAME-db.service" || {
		restore_database
		die "the database did not stop: nothing was changed" \
			"See: journalctl -u websonic-$NAME-db.service"
	}
	snapshot_database
	put "$UNITS/websonic-$NAME-db.service" 644 database_unit || true
	systemd_reload
	state_set database_digest "$P_DB_DIGEST" database_engine "$P_DB" database_version "${P_DB_VERSION:-}"
	DB_CHANGED=1
	database_up "$HEALTH_TIMEOUT" && return 0
	stop_failed_unit "websonic-$NAME-db.service" "the new $P_DB image (within $HEALTH_TIMEOUT s)"
	restore_database
	[ -z "$(state_get active_slot)" ] || RESULT_SLOT=$(state_get active_slot) STATUS=rolled_back
	die "the $P_DB image $P_DB_DIGEST of release $P_RELEASE did not become healthy: the database is back on its previous image $previous with its data$(serving_note)" \
		"Fix the database image (websonic base build $P_DB), build the site again and deploy that." \
		"$E_HEALTH"
}

serving_note() {  # "; release N keeps serving" when one does
	[ -z "$(state_get active_slot)" ] || printf '; release %s keeps serving' "$(state_get active_release)"
}

snapshot_database() {  # $DATA/database.previous: a copy of the stopped database's data
	local started
	started=$(date +%s)
	rm -rf "$DATA/database.previous" "$DATA/database.partial"
	# A reflink where the filesystem has them (btrfs, XFS): instant, and no space until written.
	if cp -a --reflink=auto "$DATA/database" "$DATA/database.partial" &&
		mv "$DATA/database.partial" "$DATA/database.previous"; then
		say "copied the database's data ($(du -sh "$DATA/database.previous" | cut -f1)) to" \
			"$DATA/database.previous in $(($(date +%s) - started)) s"
		return 0
	fi
	rm -rf "$DATA/database.partial"
	restore_database
	die "cannot copy the database's data to $DATA/database.previous: the update was not made" \
		"Check the disk where $DATA lives (space, errors), then run again."
}

restore_database() {  # the previous image's unit and the copy of its data back, started
	local previous
	previous=$(state_get database_previous_digest)
	[ -n "$previous" ] || return 0
	say "putting the $P_DB database back on image $previous with its data"
	stop_unit "websonic-$NAME-db.service" 2>/dev/null
	if [ -d "$DATA/database.previous" ]; then  # what the new image left is kept aside
		if [ -e "$DATA/database" ]; then
			rm -rf "$DATA/database.failed" && mv "$DATA/database" "$DATA/database.failed" ||
				die "cannot move $DATA/database aside" "Its previous data is in $DATA/database.previous."
		fi
		mv "$DATA/database.previous" "$DATA/database" ||
			die "cannot put the previous data back" "It is in $DATA/database.previous."
	fi
	rm -rf "$DATA/database.partial"
	if [ -f "$CONF/db.service.previous" ]; then
		mv -f "$CONF/db.service.previous" "$UNITS/websonic-$NAME-db.service" ||
			die "cannot put the previous database unit back" "It is in $CONF/db.service.previous."
	fi
	systemd_reload
	state_set database_digest "$previous" database_version "$(state_get database_previous_version)" \
		database_previous_digest '' database_previous_version '' database_update_slot ''
	DB_UPDATE=0 DB_CHANGED=1 DB_RESTORED=1
	if ! database_up; then
		stop_failed_unit "websonic-$NAME-db.service" "the $P_DB database on image $previous"
		die "the database did not start again on its previous image $previous: it was stopped" \
			"See its log lines above, or: journalctl -u websonic-$NAME-db.service; its data is in $DATA/database"
	fi
	say "the database runs image $previous again, with its data as it was before the update"
}

commit_database() {  # the new release serves on the new image: the copies are not needed
	[ -n "$(state_get database_previous_digest)" ] || return 0
	rm -rf "$DATA/database.previous" "$DATA/database.failed" "$CONF/db.service.previous"
	state_set database_previous_digest '' database_previous_version '' database_update_slot ''
	say "the database runs image $(state_get database_digest); the copy of its previous data was removed"
}

recover_database() {  # a run killed during a database update: keep it if its release serves
	local slot
	[ -n "$(state_get database_previous_digest)" ] || return 0
	if [ "$DRY_RUN" = 1 ]; then
		say "would: finish or undo the database update of an interrupted run"
		return 0
	fi
	slot=$(state_get database_update_slot)
	if [ "$slot" = "$(state_get active_slot)" ]; then
		say "an interrupted run had switched to its release on the new database image: keeping it"
		commit_database
	else
		say "an interrupted run left a database update unfinished: putting it back"
		restore_database
	fi
}

# check_database_change: a new major version (or another engine) keeps its data in other files:
# it is not an update but a migration, refused here before anything changes.
check_database_change() {
	local engine version
	case ${P_DB_VERSION:-} in
	'') ;;
	*[!0-9.]* | .* | *. | *..*) die "the plan's database_version is malformed" "" "$E_VERIFY" ;;
	esac
	[ "$P_DB_MODE" = container ] && [ -n "$P_DB_IMAGE" ] || return 0
	[ -n "$(state_get database_digest)" ] || return 0  # no database here yet
	engine=$(running_database_engine)
	version=$(running_database_version "$engine")
	if [ -n "$engine" ] && [ "$engine" != "$P_DB" ]; then
		refuse_database_change "$engine ${version:-?}"
	fi
	[ -n "$version" ] && [ -n "${P_DB_VERSION:-}" ] || return 0  # the engine refuses a wrong one
	same_major "$P_DB" "$version" "$P_DB_VERSION" || refuse_database_change "$P_DB $version"
}

refuse_database_change() {  # refuse_database_change "ENGINE VERSION" (what runs here)
	die "release $P_RELEASE needs $P_DB ${P_DB_VERSION:-}, but the database of $SITE here is $1: a new major version or engine is not updated in place (its data files differ)" \
		"Move the data into a new database container with websonic db migrate: deploy release $P_RELEASE as another site or on another server (its database starts empty), then websonic db migrate --from this database --to that one (websonic migrate does both; see docs/migration.md). Nothing was changed here$(serving_note)." \
		"$E_VERIFY"
}

running_database_engine() {  # from the state; from the data for a database of an older installer
	local engine
	engine=$(state_get database_engine)
	if [ -z "$engine" ] && [ -f "$DATA/database/data/PG_VERSION" ]; then engine=postgresql; fi
	if [ -z "$engine" ] && [ -d "$DATA/database/data/mysql" ]; then engine=mariadb; fi
	echo "$engine"
}

running_database_version() {  # running_database_version ENGINE: '' when it cannot be told
	local version
	version=$(state_get database_version)
	if [ -z "$version" ] && [ "$1" = postgresql ]; then
		version=$(cat "$DATA/database/data/PG_VERSION" 2>/dev/null)
	fi
	if [ -z "$version" ] && [ "$1" = mariadb ]; then
		version=$(sed -n '1s/^\([0-9][0-9.]*\).*/\1/p' "$DATA/database/data/mysql_upgrade_info" 2>/dev/null)
	fi
	echo "$version"
}

same_major() {  # same_major ENGINE VERSION VERSION: the same major version of ENGINE
	[ "$(major_version "$1" "$2")" = "$(major_version "$1" "$3")" ]
}

major_version() {  # major_version ENGINE VERSION: PostgreSQL 15.6 -> 15, MariaDB 10.11.6 -> 10.11
	case $1 in
	mariadb) printf '%s\n' "$2" | cut -d. -f1-2 ;;
	*) printf '%s\n' "$2" | cut -d. -f1 ;;
	esac
}

# The site's private network has no DNS server: podman's (aardvark-dns) drops queries while it
# reloads, which it does whenever a container joins or leaves (a blue/green switch), and each
# lost query stalls a request 5 s. The database has a fixed address instead, outside the range
# podman leases to other containers, and the site finds it as `db` in its /etc/hosts.
ensure_network() {
	podman network exists "$NETWORK" 2>/dev/null ||
		act "create podman network $NETWORK" create_network
	DB_ADDRESS=$(podman network inspect --format '{{index .Labels "io.websonic.database"}}' \
		"$NETWORK" 2>/dev/null)  # empty on a network made by an older installer: `db` by DNS
}

create_network() {  # podman picks a free subnet; made again with the lease range and no DNS
	local subnet layout
	podman network create "$NETWORK" >/dev/null || die "cannot create podman network $NETWORK"
	subnet=$(podman network inspect --format '{{range .Subnets}}{{.Subnet}} {{end}}' "$NETWORK" |
		tr ' ' '\n' | grep -m 1 '^[0-9.]*/[0-9]*$')
	podman network rm -f "$NETWORK" >/dev/null 2>&1
	layout=$(network_layout "$subnet") ||
		die "podman gave network $NETWORK the subnet '$subnet', too small for a site" \
			"Set default_subnet_pools in containers.conf to /24 subnets (podman's default)."
	# shellcheck disable=SC2086 # two words on purpose
	set -- $layout
	podman network create --disable-dns --subnet "$subnet" --ip-range "$1" \
		--label "io.websonic.database=$2" "$NETWORK" >/dev/null ||
		die "cannot create podman network $NETWORK ($subnet)"
}

network_layout() {  # network_layout CIDR: "LEASED_HALF DATABASE_ADDRESS" of an IPv4 subnet
	local bits="${1#*/}" size base
	case $1 in *.*.*.*/*) ;; *) return 1 ;; esac
	is_number "$bits" && [ "$bits" -ge 8 ] && [ "$bits" -le 28 ] || return 1
	size=$((1 << (32 - bits)))
	base=$(($(ip_number "${1%/*}") / size * size))
	echo "$(ip_text "$base")/$((bits + 1)) $(ip_text $((base + size - 2)))"
}

ip_number() {  # ip_number A.B.C.D
	local IFS=.
	# shellcheck disable=SC2086 # split on the dots
	set -- $1
	echo $((($1 << 24) + ($2 << 16) + ($3 << 8) + $4))
}

ip_text() { echo "$(($1 >> 24 & 255)).$(($1 >> 16 & 255)).$(($1 >> 8 & 255)).$(($1 & 255))"; }

# The database keeps its MAC address too: a database started again (an update, or putting one
# back) with a new one is unreachable from the running site until its ARP entry expires (10 s).
address_mac() {  # address_mac A.B.C.D: a locally administered MAC address made of it
	local IFS=.
	# shellcheck disable=SC2086 # split on the dots
	set -- $1
	printf '02:00:%02x:%02x:%02x:%02x\n' "$1" "$2" "$3" "$4"
}

db_password() {  # made here, on the server, once; never leaves it
	[ -s "$CONF/db-password" ] && return 0
	[ "$DRY_RUN" = 1 ] && say "would: generate the database password" && return 0
	(umask 077 && random_password >"$CONF/db-password") || die "cannot write $CONF/db-password"
	[ -s "$CONF/db-password" ] || die "could not generate a database password"
}

db_env() {
	[ "$DRY_RUN" = 1 ] && [ ! -s "$CONF/db-password" ] && return 0
	put "$CONF/database.env" 600 database_env || true
}

database_env() {  # how the site reaches its database: DATABASE_URL and the engine's own variables
	local pw url
	pw=$(cat "$CONF/db-password")
	if [ "$P_DB" = postgresql ]; then
		url="postgresql://$P_DB_USER:$pw@db:$P_DB_PORT/$P_DB_NAME"
		printf 'DATABASE_URL=%s\nPGHOST=db\nPGPORT=%s\nPGDATABASE=%s\nPGUSER=%s\nPGPASSWORD=%s\n' \
			"$url" "$P_DB_PORT" "$P_DB_NAME" "$P_DB_USER" "$pw"
	else
		url="mysql://$P_DB_USER:$pw@db:$P_DB_PORT/$P_DB_NAME"
		printf 'DATABASE_URL=%s\nDB_HOST=db\nDB_PORT=%s\nDB_NAME=%s\nDB_USER=%s\nDB_PASSWORD=%s\n' \
			"$url" "$P_DB_PORT" "$P_DB_NAME" "$P_DB_USER" "$pw"
	fi
}

db_run_args() {  # (every value checked by check_plan_values: each is one word)
	printf '%s' "--name websonic-$NAME-db --network $NETWORK --network-alias db"
	[ -z "$DB_ADDRESS" ] || printf '%s' " --ip $DB_ADDRESS --mac-address $(address_mac "$DB_ADDRESS")"
	printf '%s' " $(confinement "$P_DB_LIMIT_MEMORY" "$P_DB_LIMIT_PIDS") $(db_capabilities)"
	printf '%s' " -e DB_NAME=$P_DB_NAME -e DB_USER=$P_DB_USER"
	printf '%s' " -e DB_PASSWORD_FILE=/run/secrets/db-password"
	printf '%s' " -v $CONF/db-password:/run/secrets/db-password:ro"
	printf '%s' " -v $DATA/database:/var/lib/websonic-db $P_DB_IMAGE"
}

start_database() {
	[ "$DRY_RUN" = 1 ] && return 0
	database_up && return 0
	stop_failed_unit "websonic-$NAME-db.service" "the $P_DB database"
	die "the $P_DB database did not start, or did not become healthy: it was stopped" \
		"See its log lines above, or: journalctl -u websonic-$NAME-db.service"
}

database_up() {  # database_up [SECONDS]: (re)start it if changed or down; wait for health
	local unit="websonic-$NAME-db.service"
	mkdir -p "$DATA/database" || die "cannot create $DATA/database"
	release_restarts "$unit"  # held by a run killed while it stopped the database
	if [ "${DB_CHANGED:-0}" = 1 ] || ! systemctl is-active -q "$unit"; then
		say "starting the $P_DB database"
		stop_unit "$unit"  # a start under way (a restart after a crash) is not cut short
		if ! systemctl enable -q "$unit" || ! restart_unit "$unit"; then
			address_held_note "$unit"
			return 1
		fi
		CHANGED=1 DB_CHANGED=0
	fi
	wait_for_database "$unit" "${1:-180}"
}

# A database that exits again and again (a broken image, a bad setting) is not waited for until
# the deadline: three exits in a row since this wait began are its answer.
DB_EXITS_MAX=3

wait_for_database() {  # wait_for_database UNIT SECONDS: healthy; 1 at the deadline or on exits
	local deadline=$(( $(date +%s) + $2 )) restarts exits
	restarts=$(unit_restarts "$1")
	until podman exec "websonic-$NAME-db" websonic-db health >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		exits=$(( $(unit_restarts "$1") - restarts ))
		if [ "$exits" -ge "$DB_EXITS_MAX" ]; then
			say "the $P_DB database exited $exits times in a row: not waiting for it any longer"
			return 1
		fi
		sleep 0.5
	done
}

unit_restarts() {  # unit_restarts UNIT: how many times systemd restarted it after it exited
	local n
	n=$(systemctl show -p NRestarts --value "$1" 2>/dev/null)
	is_number "$n" && echo "$n" || echo 0
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...: poll every half second
	local what="$1" deadline=$(( $(date +%s) + $2 ))
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.5
	done
}

# ---------------------------------------------------------------------------------------------
# systemd units

unit_file() {  # unit_file NAME DESCRIPTION PODMAN_RUN_ARGS ENVIRONMENT_FILE
	cat <<EOF
$MARKER: $SITE. Remove with $SBIN/websonic-uninstall-$NAME
[Unit]
Description=WebSonic: $2
Wants=network-online.target
After=network-online.target$(case $1 in *-db) ;; *) echo " websonic-$NAME-db.service" ;; esac)

[Service]
Environment=PODMAN_SYSTEMD_UNIT=%n
$([ -z "$4" ] || echo "EnvironmentFile=$4")
Restart=on-failure
RestartSec=2
TimeoutStartSec=180
TimeoutStopSec=60
ExecStartPre=/bin/rm -f %t/%n.ctr-id
ExecStart=/usr/bin/podman run --cidfile=%t/%n.ctr-id --cgroups=no-conmon --rm --sdnotify=conmon --replace -d $3
ExecStop=/usr/bin/podman stop --ignore -t 20 --cidfile=%t/%n.ctr-id
ExecStopPost=/usr/bin/podman rm -f --ignore -t 10 --cidfile=%t/%n.ctr-id
Type=notify
NotifyAccess=all

[Install]
WantedBy=multi-user.target
EOF
}

restart_unit() {  # restart_unit UNIT: a unit that failed before starts afresh
	# A start under way is finished first, never cut short (see stop_unit). A unit that failed
	# quickly several times can be refused by systemd's start limit (5 starts in 10 s) until its
	# failed state is reset: an earlier failure must not block this start.
	if unit_starting "$1"; then stop_unit "$1"; fi
	systemctl reset-failed "$1" 2>/dev/null
	systemctl restart "$1"
}

stop_failed_unit() {  # stop_failed_unit UNIT WHAT: show its last log lines and stop it
	# Restart=on-failure would otherwise start it again and again, for nothing.
	say "$2 did not become healthy; its last log lines:"
	journalctl -u "$1" -n 20 --no-pager 2>/dev/null | sed 's/^/websonic:   | /'
	stop_unit "$1" 2>/dev/null
	systemctl reset-failed "$1" 2>/dev/null
	return 0
}

# A unit stopped (or restarted) while it starts has its `podman run` killed. Killed after podman
# reserved the container's address but before it recorded the container's network, the address
# stays reserved, in /run/containers/networks/ipam.db, for a container that is gone: every later
# start of the database with its fixed address fails ("requested ip address ... is already
# allocated to container ID ...") until the server reboots. So a unit that is starting, or about
# to restart after a crash, has its automatic restarts held and its start finished first.
RESTART_HOLD=websonic-hold-restarts.conf

stop_unit() {  # stop_unit UNIT: stopped between two starts, never during one; systemctl's status
	local rc=0
	if unit_starting "$1"; then
		hold_restarts "$1"
		wait_for "$1 to finish starting" 240 unit_not_starting "$1"  # systemd's limit: 180 s
	fi
	systemctl stop "$1" || rc=$?
	release_restarts "$1"
	return "$rc"
}

unit_starting() {  # unit_starting UNIT: a start is under way, or a restart after a crash due
	case $(systemctl show -p SubState --value "$1" 2>/dev/null) in
	condition | start-pre | start | start-post | auto-restart*) return 0 ;;
	*) return 1 ;;
	esac
}

unit_not_starting() { ! unit_starting "$1"; }

hold_restarts() {  # hold_restarts UNIT: Restart=no until release_restarts (or a reboot: in /run)
	mkdir -p "/run/systemd/system/$1.d" &&
		printf '%s\n' "$MARKER" '[Service]' 'Restart=no' >"/run/systemd/system/$1.d/$RESTART_HOLD" &&
		systemctl daemon-reload
}

release_restarts() {  # release_restarts UNIT: its own Restart= again
	[ -e "/run/systemd/system/$1.d/$RESTART_HOLD" ] || return 0
	rm -f "/run/systemd/system/$1.d/$RESTART_HOLD"
	rmdir "/run/systemd/system/$1.d" 2>/dev/null
	systemctl daemon-reload
}

address_held_note() {  # address_held_note UNIT: the start failed on an address reserved before
	journalctl -u "$1" -n 30 --no-pager 2>/dev/null | grep -q 'is already allocated to container ID' ||
		return 0
	warn "podman still reserves the database's address ${DB_ADDRESS:-} for a container that is" \
		"gone (a start cut short by an earlier run); restarting the server frees it, then run again"
}

systemd_reload() { [ "$DRY_RUN" = 1 ] || systemctl daemon-reload || die "systemctl daemon-reload failed"; }

slot_unit() {  # the unit of one slot: its image and port come from the slot's file
	unit_file "$NAME-$1" "$SITE (slot $1)" "$(slot_run_args "$1")" "$CONF/slot-$1"
}

# podman run's arguments, one line of an ExecStart (systemd splits it at spaces): every value
# in it was checked by check_plan_values, so each is one word without quotes, '$' or '%'.
slot_run_args() {  # slot_run_args SLOT
	printf '%s' "--name websonic-$NAME-$1 --network $NETWORK"
	if site_has_database && [ -n "$DB_ADDRESS" ]; then printf '%s' " --add-host db:$DB_ADDRESS"; fi
	printf '%s' " -p 127.0.0.1:\${PORT}:$P_PORT $(confinement "$P_LIMIT_MEMORY" "$P_LIMIT_PIDS")"
	printf '%s' " --user $SITE_USER --env-file $CONF/env --env-file $CONF/secrets.env"
	if site_has_database; then printf '%s' " --env-file $CONF/database.env"; fi
	volume_args
	printf '%s' " \${IMAGE}"  # systemd takes it from the slot's file
}

volume_args() {  # -v DATA/volumes/NAME:PATH for each volume (checked: one word each)
	local volume
	while IFS= read -r volume; do
		[ -z "$volume" ] || printf ' -v %s' "$DATA/volumes/${volume%%:*}:${volume#*:}"
	done <<EOF
$P_VOLUMES
EOF
}

# Every container of a site: no capabilities (the database adds back what its entrypoint
# needs), no privilege gained through setuid files, memory and processes limited as the
# hosting spec says.
confinement() {  # confinement MEMORY_MIB PIDS
	printf '%s' "--cap-drop=all --security-opt=no-new-privileges --memory=${1}m --pids-limit=$2"
}

# The database image's entrypoint starts as root to give the data folder to the engine's user
# (chown, chmod, reading it: CHOWN, FOWNER, DAC_OVERRIDE), then becomes that user (SETUID,
# SETGID: the server itself runs with no capability at all); MariaDB's first start also stops
# its temporary server, which runs as that user (KILL).
db_capabilities() {
	printf '%s' "--cap-add=CHOWN,DAC_OVERRIDE,FOWNER,SETGID,SETUID"
	[ "$P_DB" != mariadb ] || printf '%s' ",KILL"
}

# ---------------------------------------------------------------------------------------------
# Caddy

ensure_caddyfile() {  # Caddy imports WebSonic's site files; Debian's default site is set aside
	local main="$CADDY_ETC/Caddyfile"
	[ "$DRY_RUN" = 1 ] && [ ! -d "$CADDY_ETC" ] && return 0
	if [ -f "$main" ] && grep -q "import $CADDY_SITES/\*.caddy" "$main"; then return 0; fi
	if [ -f "$main" ] && ! caddyfile_is_default "$main"; then
		act "add WebSonic's sites to $main" sh -c "printf '\nimport $CADDY_SITES/*.caddy\n' >>'$main'"
		return 0
	fi
	[ ! -f "$main" ] || [ -f "$main.websonic-orig" ] || act "keep Debian's $main aside" \
		cp -p "$main" "$main.websonic-orig"
	put "$main" 644 printf '%s\n%s\n' "$MARKER: sites managed by WebSonic are in $CADDY_SITES" \
		"import $CADDY_SITES/*.caddy" || true
}

caddyfile_is_default() {  # unchanged since the caddy package installed it
	local shipped
	shipped=$(dpkg-query -W -f='${Conffiles}\n' caddy 2>/dev/null |
		awk '$1 == "/etc/caddy/Caddyfile" {print $2}')
	[ -n "$shipped" ] && [ "$(md5sum <"$1" | cut -d' ' -f1)" = "$shipped" ]
}

site_domains() {  # --domain, else the domains of the last install, else the plan's
	if [ -n "$DOMAINS" ]; then echo "$DOMAINS"; return 0; fi
	if [ -f "$STATE" ] && grep -q '^domains=' "$STATE"; then state_get domains; return 0; fi
	echo "$P_DOMAINS"
}

site_address() {  # the site's domains, else this server's first address
	local domains
	domains=$(site_domains)
	if [ -n "$domains" ]; then echo "$domains" | sed 's/ /, /g'; return 0; fi
	primary_address
}

primary_address() {  # the source address of the default route (a lookup: nothing is sent)
	local address
	address=$(ip -4 route get 192.0.2.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
	if [ -z "$address" ]; then address=$(hostname -I 2>/dev/null | awk '{print $1}'); fi
	echo "$address"
}

caddy_site() {  # caddy_site PORT: the site's Caddy file, proxying to 127.0.0.1:PORT
	local tls="${TLS:-$P_TLS}" email="${EMAIL:-$P_EMAIL}" address
	address=$(site_address)
	[ -n "$address" ] || die "no domain and no address to serve $SITE at" "Use --domain NAME."
	cat <<EOF
$MARKER: $SITE. Remove with $SBIN/websonic-uninstall-$NAME
$address {
$(if [ "$tls" = internal ]; then echo "	tls internal"; elif [ -n "$email" ]; then echo "	tls $email"; fi)
	encode gzip
	reverse_proxy 127.0.0.1:$1 {
		lb_try_duration 10s
		lb_try_interval 100ms
	}
	log {
		output file /var/log/caddy/websonic-$NAME.access.log
	}
}
EOF
}

caddy_switch() {  # caddy_switch PORT: point the site at PORT, validated, gracefully reloaded
	local file="$CADDY_SITES/$NAME.caddy"
	[ "$DRY_RUN" = 1 ] || mkdir -p "$CADDY_SITES" || die "cannot create $CADDY_SITES"
	[ -f "$file" ] && cp -p "$file" "$WORK/caddy.previous"
	put "$file" 644 caddy_site "$1" || return 0
	[ "$DRY_RUN" = 1 ] && return 0
	if ! caddy validate --config "$CADDY_ETC/Caddyfile" --adapter caddyfile >"$WORK/caddy.err" 2>&1; then
		if [ -f "$WORK/caddy.previous" ]; then cp -p "$WORK/caddy.previous" "$file"; else rm -f "$file"; fi
		grep -v '"level":"info"' "$WORK/caddy.err" | sed 's/^/websonic:   | /'
		return 1
	fi
	caddy_reload
}

caddy_reload() {
	systemctl enable -q caddy 2>/dev/null
	if systemctl is-active -q caddy; then
		systemctl reload caddy || die "Caddy could not reload its configuration" "See: journalctl -u caddy"
	else
		systemctl start caddy || die "Caddy did not start" "See: journalctl -u caddy"
	fi
}

caddy_port() {  # the port the site's Caddy file proxies to now ('' if none)
	sed -n 's/.*reverse_proxy 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$CADDY_SITES/$NAME.caddy" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# Blue/green

recover() {  # a run killed half-way: make the state say what Caddy really serves
	local pending serving
	pending=$(state_get pending_slot)
	[ -n "$pending" ] || return 0
	serving=$(caddy_port)
	if [ -n "$serving" ] && [ "$serving" = "$(state_get "port_$pending")" ]; then
		say "an interrupted run had switched to slot $pending: recording it"
		state_set previous_slot "$(state_get active_slot)" previous_release "$(state_get active_release)" \
			previous_digest "$(state_get active_digest)" active_slot "$pending" \
			active_release "$(state_get pending_release)" active_digest "$(state_get pending_digest)" \
			pending_slot ''
	else
		say "an interrupted run left slot $pending half-started: removing it"
		[ "$DRY_RUN" = 1 ] || systemctl stop "websonic-$NAME-$pending.service" 2>/dev/null
		state_set pending_slot ''
	fi
}

# Two local ports per site, for its blue and green slots, recorded in its state. Every site's
# installer picks from the same range: reading the others' ports, picking and recording are
# done under one server-wide lock, so two installs of different sites never pick the same.
allocate_ports() {
	[ -n "$(state_get port_blue)" ] && return 0
	local ports
	take_ports_lock
	ports=$(free_ports)
	# shellcheck disable=SC2086 # split the list on purpose
	set -- $ports
	[ $# -ne 2 ] || state_set port_blue "$1" port_green "$2"
	rm -rf "$PORTS_LOCK"
	[ $# -eq 2 ] || die "no free local ports in $PORT_FIRST-$PORT_LAST"
}

free_ports() {  # the first two ports no site has recorded and nothing listens on
	local port="$PORT_FIRST" found='' used
	used=$(cat "$ETC"/sites/*/state 2>/dev/null | sed -n 's/^port_[a-z]*=//p')
	while [ "$port" -le "$PORT_LAST" ]; do
		if ! echo "$used" | grep -qx "$port" && [ -z "$(port_holder "$port")" ]; then
			found="$found $port"
			[ "$(printf '%s\n' "$found" | wc -w)" -lt 2 ] || break
		fi
		port=$((port + 1))
	done
	echo "$found"
}

take_ports_lock() {  # waits up to 60 s for another site's installer to record its ports
	local tries=0 pid
	until mkdir "$PORTS_LOCK" 2>/dev/null; do
		pid=$(cat "$PORTS_LOCK/pid" 2>/dev/null || true)
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then  # its installer died holding it
			rm -rf "$PORTS_LOCK"
			continue
		fi
		tries=$((tries + 1))
		[ "$tries" -le 600 ] || die "another installer holds $PORTS_LOCK (pid ${pid:-unknown})" \
			"Wait for it to end, then run again." "$E_BUSY"
		sleep 0.1
	done
	echo $$ >"$PORTS_LOCK/pid"
}

other_slot() { if [ "$1" = blue ]; then echo green; else echo blue; fi; }

slot_settings() {  # what a slot runs: its image and port
	printf 'IMAGE=%s\nPORT=%s\n' "$P_IMAGE" "$(state_get "port_$1")"
}

site_healthy() {  # site_healthy PORT
	curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$1$P_HEALTH"
}

deploy_release() {
	local active new port_new
	active=$(state_get active_slot)
	if [ -n "$active" ] && [ "${DB_UPDATE:-0}" = 0 ] && up_to_date "$active"; then
		say "release $P_RELEASE is already serving from slot $active: nothing to change"
		# A rebuild of the same source is the same image: it serves as it is.
		state_set active_release "$P_RELEASE"
		RESULT_SLOT=$active STATUS=unchanged
		[ "${CHANGED:-0}" = 0 ] || STATUS=succeeded
		return 0
	fi
	refuse_downgrade
	new=$(other_slot "${active:-green}")
	port_new=$(state_get "port_$new")
	if [ "$DRY_RUN" = 1 ]; then
		[ "${DB_UPDATE:-0}" = 0 ] || update_database "$new"
		say "would: start release $P_RELEASE in slot $new (port ${port_new:-new}), check $P_HEALTH," \
			"switch Caddy to it and stop slot ${active:-none}"
		STATUS=dry-run
		return 0
	fi
	put "$UNITS/websonic-$NAME-$new.service" 644 slot_unit "$new" || true
	put "$CONF/slot-$new" 600 slot_settings "$new" || true
	systemd_reload
	[ "${DB_UPDATE:-0}" = 0 ] || update_database "$new"
	state_set pending_slot "$new" pending_release "$P_RELEASE" pending_digest "$P_DIGEST"
	start_slot "$new" "$port_new" || rollback_failed_start "$new"
	switch_to "$new" "$active"
}

up_to_date() {  # the active slot runs this plan's image, with unchanged settings, and is healthy
	local slot="$1"
	[ "$(state_get active_digest)" = "$P_DIGEST" ] || return 1
	[ "${CHANGED:-0}" = 0 ] || return 1
	slot_unit "$slot" | cmp -s - "$UNITS/websonic-$NAME-$slot.service" || return 1
	slot_settings "$slot" | cmp -s - "$CONF/slot-$slot" || return 1
	caddy_site "$(state_get "port_$slot")" | cmp -s - "$CADDY_SITES/$NAME.caddy" || return 1
	systemctl is-active -q "websonic-$NAME-$slot.service" || return 1
	site_healthy "$(state_get "port_$slot")"
}

start_slot() {  # start_slot SLOT PORT: start it and wait for its health path
	say "starting release $P_RELEASE in slot $1 (127.0.0.1:$2)"
	restart_unit "websonic-$NAME-$1.service" || return 1
	say "waiting up to $HEALTH_TIMEOUT s for http://127.0.0.1:$2$P_HEALTH"
	local deadline=$(( $(date +%s) + HEALTH_TIMEOUT ))
	until site_healthy "$2" 2>/dev/null; do
		systemctl is-active -q "websonic-$NAME-$1.service" || return 1
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.5
	done
	say "slot $1 is healthy"
}

rollback_failed_start() {  # the new release never became healthy: remove it, keep the old
	local slot="$1"
	say "release $P_RELEASE did not become healthy; its last log lines:"
	podman logs --tail 30 "websonic-$NAME-$slot" 2>&1 | sed 's/^/websonic:   | /'
	journalctl -u "websonic-$NAME-$slot.service" -n 10 --no-pager 2>/dev/null | sed 's/^/websonic:   | /'
	stop_slot "$slot"
	state_set pending_slot ''
	restore_database
	if [ -n "$(state_get active_slot)" ]; then
		RESULT_SLOT=$(state_get active_slot) STATUS=rolled_back
		die "release $P_RELEASE failed its health check and was removed; release $(state_get active_release) keeps serving$(restored_note)" \
			"Fix the release, build it again and deploy that." "$E_HEALTH"
	fi
	STATUS=failed
	die "release $P_RELEASE failed its health check (first install: nothing serves yet)$(restored_note)" \
		"Fix the release, build it again and deploy that." "$E_HEALTH"
}

restored_note() {  # after restore_database: say so in the message
	[ "${DB_RESTORED:-0}" = 0 ] || printf '; the database is back on its previous image with its data'
}

switch_to() {  # switch_to NEW OLD: Caddy to NEW, then drain and stop OLD (kept for rollback)
	local new="$1" old="$2"
	if ! caddy_switch "$(state_get "port_$new")"; then
		stop_slot "$new"
		state_set pending_slot ''
		restore_database
		die "Caddy refused the configuration for $(site_address): nothing was switched" \
			"Another site on this server may already use that address: give this one --domain NAME."
	fi
	state_set domains "$(site_domains)"
	systemctl enable -q "websonic-$NAME-$new.service" 2>/dev/null
	if [ "$(state_get active_digest)" != "$P_DIGEST" ]; then  # else: same release, new settings
		state_set previous_release "$(state_get active_release)" \
			previous_digest "$(state_get active_digest)" previous_image "$(state_get active_image)"
	fi
	state_set previous_slot "$old" active_slot "$new" active_release "$P_RELEASE" \
		active_digest "$P_DIGEST" active_image "$P_IMAGE" pending_slot ''
	commit_database
	say "Caddy now sends $SITE to slot $new (release $P_RELEASE)"
	RESULT_SLOT=$new RESULT_PREVIOUS=$old STATUS=succeeded
	if [ -n "$old" ]; then
		say "draining slot $old for $DRAIN s, then stopping it (kept for rollback)"
		sleep "$DRAIN"
		stop_slot "$old"
	fi
	prune_images
}

stop_slot() {
	systemctl stop "websonic-$NAME-$1.service" 2>/dev/null
	systemctl disable -q "websonic-$NAME-$1.service" 2>/dev/null
	return 0
}

prune_images() {  # keep the active and previous releases' images, remove older ones of the site
	local keep ref
	keep=" $(state_get active_digest) $(state_get previous_digest) $(state_get database_digest) "
	podman images --digests --format '{{.Repository}}@{{.Digest}}' 2>/dev/null |
		grep "/$SITE@" | while IFS= read -r ref; do
			case $keep in *" ${ref#*@} "*) continue ;; esac
			podman rmi "$ref" >/dev/null 2>&1 && say "removed the old image $ref"
		done
	return 0
}

rollback() {
	local active previous
	active=$(state_get active_slot)
	previous=$(state_get previous_slot)
	[ -n "$previous" ] && [ -n "$(state_get previous_release)" ] ||
		die "there is no previous release of $SITE on this server to go back to" "" "$E_USAGE"
	[ "$(state_get previous_digest)" = "$P_DIGEST" ] ||
		die "the plan is for release $P_RELEASE, not the previous release $(state_get previous_release)" \
			"" "$E_VERIFY"
	if [ "$DRY_RUN" = 1 ]; then
		[ "${DB_UPDATE:-0}" = 0 ] || update_database "$previous"
		say "would: start release $P_RELEASE in slot $previous, switch Caddy to it, stop slot $active"
		STATUS=dry-run
		return 0
	fi
	put "$CONF/slot-$previous" 600 slot_settings "$previous" || true
	put "$UNITS/websonic-$NAME-$previous.service" 644 slot_unit "$previous" || true
	systemd_reload
	[ "${DB_UPDATE:-0}" = 0 ] || update_database "$previous"
	state_set pending_slot "$previous" pending_release "$P_RELEASE" pending_digest "$P_DIGEST"
	start_slot "$previous" "$(state_get "port_$previous")" || rollback_failed_start "$previous"
	switch_to "$previous" "$active"
}

# ---------------------------------------------------------------------------------------------
# Updater timer and uninstall script

updater() {
	local timer="$UNITS/websonic-update-$NAME.timer" service="$UNITS/websonic-update-$NAME.service"
	case ${AUTO_UPDATE:-} in
	1)
		put "$service" 644 updater_service || true
		put "$timer" 644 updater_timer || true
		systemd_reload
		[ "$DRY_RUN" = 1 ] || systemctl enable -q --now "websonic-update-$NAME.timer" ||
			die "cannot enable the updater timer"
		state_set auto_update 1
		;;
	0)
		[ -f "$timer" ] || return 0
		act "remove the updater timer" sh -c "systemctl disable -q --now websonic-update-$NAME.timer; rm -f '$timer' '$service'"
		systemd_reload
		state_set auto_update 0
		;;
	esac
}

updater_service() {
	cat <<EOF
$MARKER: $SITE. Remove with $SBIN/websonic-uninstall-$NAME
[Unit]
Description=WebSonic: apply new signed releases of $SITE
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/bin/sh $LIB/install.sh --update --site $SITE
EOF
}

updater_timer() {
	cat <<EOF
$MARKER: $SITE. Remove with $SBIN/websonic-uninstall-$NAME
[Unit]
Description=WebSonic: look for new releases of $SITE

[Timer]
OnBootSec=5min
OnUnitActiveSec=15min
RandomizedDelaySec=5min
Persistent=true

[Install]
WantedBy=timers.target
EOF
}

write_uninstaller() {
	put "$SBIN/websonic-uninstall-$NAME" 700 uninstaller || true
}

uninstaller() {
	cat <<EOF
#!/bin/sh
$MARKER: removes $SITE and what the WebSonic installer added for it.
#   websonic-uninstall-$NAME              keep the site's data ($DATA)
#   websonic-uninstall-$NAME --purge-data remove the data too (database, uploads)
set -u
purge=0
[ "\${1:-}" = --purge-data ] && purge=1
[ "\$(id -u)" = 0 ] || { echo "run it as root" >&2; exit 2; }
for unit in websonic-update-$NAME.timer websonic-update-$NAME.service websonic-$NAME-blue.service \\
	websonic-$NAME-green.service websonic-$NAME-db.service; do
	systemctl disable -q --now "\$unit" 2>/dev/null
	rm -f "$UNITS/\$unit"
done
systemctl daemon-reload
for c in websonic-$NAME-blue websonic-$NAME-green websonic-$NAME-db; do
	podman rm -f --ignore "\$c" >/dev/null 2>&1
done
podman images --format '{{.ID}} {{.Repository}}' | awk '\$2 ~ "/$SITE\$" {print \$1}' | sort -u |
	xargs -r podman rmi -f >/dev/null 2>&1
podman network rm -f $NETWORK >/dev/null 2>&1
rm -f "$CADDY_SITES/$NAME.caddy"
if [ -z "\$(ls -A "$CADDY_SITES" 2>/dev/null)" ]; then
	rmdir "$CADDY_SITES" 2>/dev/null
	if [ -f "$CADDY_ETC/Caddyfile.websonic-orig" ]; then
		mv -f "$CADDY_ETC/Caddyfile.websonic-orig" "$CADDY_ETC/Caddyfile"
	else
		sed -i '\\#^import $CADDY_SITES/\\*.caddy\$#d' "$CADDY_ETC/Caddyfile" 2>/dev/null
	fi
fi
systemctl is-active -q caddy && systemctl reload caddy
rm -rf "$CONF" "$CERTS_D/$P_REGISTRY" "$LOGDIR/$NAME.log" /var/log/caddy/websonic-$NAME.access.log
rmdir "$CERTS_D" 2>/dev/null
if [ \$purge = 1 ]; then rm -rf "$DATA"; echo "removed the data in $DATA"; else
	[ -d "$DATA" ] && echo "kept the site's data in $DATA (remove it with --purge-data)"; fi
if [ -z "\$(ls -A "$ETC/sites" 2>/dev/null)" ]; then
	pkgs=\$(sort -u "$ETC/installed-packages" 2>/dev/null |
		xargs -r dpkg-query -W -f='\${db:Status-Abbrev} \${Package}\\n' 2>/dev/null |
		awk '\$1 == "ii" {print \$2}')
	# Only if purging them removes nothing else: a package installed since may depend on them.
	others=\$(apt-get -s purge \$pkgs 2>/dev/null | awk '/^Purg / {print \$2}' | grep -vxF "\$pkgs")
	if [ -n "\$others" ]; then
		echo "kept the packages the installer added, as other packages need them" \
			"(\$(echo \$others)); remove them with: apt-get purge \$(echo \$pkgs)"
	elif [ -n "\$pkgs" ]; then
		systemctl stop caddy 2>/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q \$pkgs >/dev/null &&
			DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -q >/dev/null &&
			echo "removed the packages the installer added: \$(echo \$pkgs)"
		# What podman made at run time, in folders no package owns any more
		rm -f /etc/cni/net.d/cni.lock /etc/containers/networks/netavark.lock
		rmdir /etc/cni/net.d /etc/cni /etc/containers/networks 2>/dev/null
	fi
	rm -rf "$ETC" "$LIB"
	rm -f "$NETWORK_CONF"
	rmdir "$(dirname "$NETWORK_CONF")" 2>/dev/null
	rmdir "$LOGDIR" "${P_DATA_DIR:-/var/lib/websonic}/sites" "${P_DATA_DIR:-/var/lib/websonic}" 2>/dev/null
fi
rm -f "$SBIN/websonic-uninstall-$NAME"
echo "removed $SITE"
EOF
}

# ---------------------------------------------------------------------------------------------
# Main

run_install() {
	load_inputs
	verify_plan
	site_paths
	recover
	recover_database
	check_database_change
	preflight
	registry_check
	[ "$DRY_RUN" = 1 ] && say "dry run: the checks passed; this is what would change:"
	ensure_runtime
	registry_ca
	write_config
	pull_images
	database
	write_uninstaller
	if [ "$DATABASE_ONLY" = 1 ]; then
		[ "$P_DB_MODE" = container ] && [ -n "$P_DB_IMAGE" ] ||
			die "$SITE has no database to set up" "" "$E_USAGE"
		say "done: the $P_DB database of $SITE is ready (no site yet)"
		STATUS=${STATUS:-succeeded}
		[ "$DRY_RUN" = 0 ] || STATUS=dry-run
		return 0
	fi
	ensure_caddyfile
	ensure_network  # every site has a network of its own, with or without a database
	allocate_ports
	if [ "$MODE" = rollback ]; then rollback; else deploy_release; fi
	updater
	[ "$DRY_RUN" = 1 ] || say "done: $SITE release $P_RELEASE serves at https://$(site_address | sed 's/,.*//')"
}

run_update() {  # the timer: install the newest release if it is newer than the active one
	load_inputs
	verify_plan
	site_paths
	if [ -n "$(state_get active_release)" ] && [ "$P_RELEASE" -le "$(state_get active_release)" ]; then
		say "release $(state_get active_release) is the newest: nothing to do"
		STATUS=unchanged
		return 0
	fi
	MODE=install
	recover
	recover_database
	check_database_change
	preflight
	registry_check
	ensure_runtime
	write_config
	pull_images
	database
	ensure_network  # every site has a network of its own, with or without a database
	allocate_ports
	deploy_release
}

main() {
	STARTED=$(date +%s)
	trap cleanup EXIT
	trap 'STATUS=failed; say "interrupted"; exit 130' INT TERM
	trap '' HUP  # a dropped SSH connection does not stop a run half-way
	umask 022
	parse_args "$@"
	need_root "$@"
	WORK=$(mktemp -d /tmp/websonic-install.XXXXXX) || die "cannot make a temporary folder"
	chmod 700 "$WORK"
	take_lock
	start_log
	if [ "$MODE" = update ]; then run_update; else run_install; fi
}

# The group opened at the top closes here: a download cut anywhere is a syntax error.
main "$@"; }
