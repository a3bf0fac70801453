#!/usr/bin/env bash
# services.sh: the dev/test services of tidegate, on 127.0.0.1 only.
#
#   scripts/services.sh start|stop|status [pg] [es] [os]     (no name = all three)
#
#   pg  PostgreSQL 15 (Debian package), private cluster, port 54320, wal_level=logical
#   es  Elasticsearch 8.19.21 integ-test-zip (Maven Central), http 19200, transport 19300
#   os  OpenSearch 2.19.6 integ-test-zip (Maven Central), http 19201, transport 19301
#
# Everything (downloads, data, logs, pid files) lives under <repo>/.services/ (git-ignored).
# After start and stop, <repo>/.services/env holds `export TIDEGATE_TEST_*=...` lines for the
# services that are running; use it with `. .services/env`.
#
# start is idempotent (a running service is left alone), stop too. Missing Debian packages
# are installed with apt-get on first use (needs root). As root, PostgreSQL runs as the
# `postgres` user and ES/OpenSearch as the system user `tidegate-svc` (both refuse root).
#
# Exit codes: start/stop 1 if a service failed; status 0 if every named service is
# running, 3 otherwise; 2 on usage errors.
#
# Overrides (environment): TIDEGATE_JAVA_HOME (JDK for es and os), TIDEGATE_ES_HEAP,
# TIDEGATE_OS_HEAP (default 1g), TIDEGATE_START_TIMEOUT (seconds, default 180).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SVC_DIR=$REPO_ROOT/.services
DIST_DIR=$SVC_DIR/dist
ENV_FILE=$SVC_DIR/env
SVC_USER=tidegate-svc
START_TIMEOUT=${TIDEGATE_START_TIMEOUT:-180}

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_PORT=54320
PG_DIR=$SVC_DIR/pg
PG_DATA=$PG_DIR/data
PG_LOG=$PG_DIR/log/postgresql.log
PG_DSN="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"

ALL_SERVICES=(pg es os)

log() { printf 'services: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

is_root() { [[ $EUID -eq 0 ]]; }

# run_as USER CMD...: run CMD as USER when we are root, as ourselves otherwise.
# fd 9 (the lock) is closed so that daemons started here do not keep it.
run_as() {
	local user=$1
	shift
	if is_root; then
		(cd / && runuser -u "$user" -- "$@") 9>&-
	else
		(cd / && "$@") 9>&-
	fi
}

# ---------------------------------------------------------------------------------------
# Packages

APT_UPDATED=false

pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ensure_pkgs PKG...: apt-get install the packages that are not installed yet.
ensure_pkgs() {
	local missing=() p
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	is_root || die "missing Debian packages: ${missing[*]} (run as root or install them)"
	log "installing ${missing[*]}"
	if ! $APT_UPDATED; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
		APT_UPDATED=true
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
		die "installing ${missing[*]} failed"
}

# ensure_cmd CMD PKG: install PKG when CMD is not on the PATH.
ensure_cmd() {
	command -v "$1" >/dev/null 2>&1 || ensure_pkgs "$2"
}

ensure_svc_user() {
	is_root || return 0
	id -u "$SVC_USER" >/dev/null 2>&1 && return 0
	log "creating system user $SVC_USER"
	useradd --system --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
}

# ensure_traversable USER DIR: fail clearly when USER cannot reach DIR (e.g. repo under /root).
ensure_traversable() {
	is_root || return 0
	run_as "$1" test -x "$2" && return 0
	die "user $1 cannot reach $2: every parent directory needs o+x (or move the repository)"
}

port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# alive PID EXPECT: true when PID is running and its command line contains EXPECT.
alive() {
	local pid=$1 expect=$2
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$expect"
}

tail_log() {
	local f
	for f in "$@"; do
		[[ -s $f ]] || continue
		log "---- last 50 lines of $f"
		tail -n 50 "$f" >&2
	done
}

# ---------------------------------------------------------------------------------------
# PostgreSQL

pg_socket_dir() {
	# Unix socket paths are limited to 107 bytes; fall back to /tmp for deep checkouts.
	if ((${#PG_DIR} + 16 > 100)); then
		echo "/tmp/tidegate-pg-$(printf '%s' "$PG_DIR" | md5sum | cut -c1-8)"
	else
		echo "$PG_DIR"
	fi
}

pg_pid() {
	local pid
	[[ -r $PG_DATA/postmaster.pid ]] || return 1
	pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 1
	alive "$pid" "$PG_BIN/postgres" || return 1
	echo "$pid"
}

pg_ready() {
	[[ -x $PG_BIN/pg_isready ]] && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 3
}

pg_version() {
	PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -Atq -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
		-c 'SHOW server_version' 2>/dev/null || echo unknown
}

pg_status() {
	local pid
	if pid=$(pg_pid); then
		if pg_ready; then
			echo "pg  running  pid=$pid  url=$PG_DSN  version=$(pg_version)"
		else
			echo "pg  running (not accepting connections)  pid=$pid  url=$PG_DSN"
		fi
		return 0
	fi
	echo "pg  stopped"
	return 1
}

pg_write_config() {
	local sock=$1
	cat >"$PG_DATA/tidegate.conf" <<EOF
# Written by scripts/services.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
max_connections = 200
shared_buffers = 256MB
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
# A slot left behind (a demo stopped for weeks, a killed test) would keep
# WAL until the disk is full; past this PostgreSQL invalidates it instead
# (tidegate then stops with "position lost", or re-snapshots).
max_slot_wal_keep_size = 8GB
wal_sender_timeout = 60s
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
	cat >"$PG_DATA/pg_hba.conf" <<EOF
# Written by scripts/services.sh on every start. Test cluster: trust on loopback only.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  trust
host    replication  all   127.0.0.1/32  trust
EOF
	if is_root; then
		chown postgres:postgres "$PG_DATA/tidegate.conf" "$PG_DATA/pg_hba.conf"
	fi
	chmod 600 "$PG_DATA/tidegate.conf" "$PG_DATA/pg_hba.conf"
}

pg_init() {
	local tmp=$PG_DIR/data.initdb
	log "pg: initdb into $PG_DATA"
	rm -rf "$tmp"
	install -d -m 700 "$tmp"
	is_root && chown postgres:postgres "$tmp"
	if ! run_as postgres "$PG_BIN/initdb" -D "$tmp" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 --data-checksums >"$PG_DIR/log/initdb.log" 2>&1; then
		tail_log "$PG_DIR/log/initdb.log"
		return 1
	fi
	echo "include_if_exists = 'tidegate.conf'" >>"$tmp/postgresql.conf"
	mv "$tmp" "$PG_DATA" || return 1
}

pg_start() {
	local pid sock
	if pid=$(pg_pid); then
		pg_wait_ready || return 1
		pg_status
		return 0
	fi
	ensure_pkgs "postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR"
	if port_in_use "$PG_PORT"; then
		log "pg: port $PG_PORT is used by another process"
		return 1
	fi
	sock=$(pg_socket_dir)
	install -d -m 755 "$PG_DIR" "$PG_DIR/log" "$sock"
	is_root && chown postgres:postgres "$PG_DIR" "$PG_DIR/log" "$sock"
	ensure_traversable postgres "$PG_DIR"
	if [[ ! -f $PG_DATA/PG_VERSION ]]; then
		pg_init || return 1
	fi
	pg_write_config "$sock"
	pg_wait_dead_postmaster
	log "pg: starting"
	local attempt
	for attempt in 1 2 3; do
		if run_as postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$START_TIMEOUT" start \
			</dev/null >"$PG_DIR/log/pg_ctl.out" 2>&1; then
			break
		fi
		# After a kill -9 the old postmaster (not yet reaped) or its children may still hold
		# the lock file or shared memory for a moment: retry before giving up.
		if ((attempt < 3)) && tail -n 5 "$PG_LOG" |
			grep -qE 'lock file "postmaster.pid" already exists|shared memory block is still in use'; then
			log "pg: previous server still exiting, retrying"
			sleep 3
			continue
		fi
		log "pg: pg_ctl start failed"
		tail_log "$PG_DIR/log/pg_ctl.out" "$PG_LOG"
		return 1
	done
	pg_wait_ready || return 1
	pg_status
}

# pg_wait_dead_postmaster: after a kill -9 the dead postmaster named in postmaster.pid can
# linger as a zombie; PostgreSQL treats any signalable pid as a running server.
pg_wait_dead_postmaster() {
	local pid deadline=$((SECONDS + 15))
	[[ -r $PG_DATA/postmaster.pid ]] || return 0
	pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 0
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
		sleep 0.5
	done
}

pg_wait_ready() {
	local deadline=$((SECONDS + START_TIMEOUT))
	until pg_ready; do
		if ((SECONDS >= deadline)) || ! pg_pid >/dev/null; then
			log "pg: not ready after ${START_TIMEOUT}s or exited"
			tail_log "$PG_LOG"
			return 1
		fi
		sleep 1
	done
}

pg_stop() {
	local pid
	if ! pid=$(pg_pid); then
		echo "pg  stopped"
		return 0
	fi
	log "pg: stopping pid $pid"
	if ! run_as postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null; then
		log "pg: pg_ctl stop failed"
		tail_log "$PG_LOG"
		return 1
	fi
	if pg_pid >/dev/null; then
		log "pg: still running after stop"
		return 1
	fi
	echo "pg  stopped"
}

# ---------------------------------------------------------------------------------------
# Elasticsearch and OpenSearch (same shape: integ-test-zip from Maven Central)

# engine NAME: set the E_* variables describing es or os.
engine() {
	case $1 in
	es)
		E_NAME=es
		E_VERSION=8.19.21
		E_GROUP=org.elasticsearch.distribution.integ-test-zip
		E_ARTIFACT=elasticsearch
		E_PORT=19200
		E_TPORT=19300
		E_HEAP=${TIDEGATE_ES_HEAP:-1g}
		E_ENV_PREFIX=ES
		E_JAVA_MAX=24
		E_URL_VAR=TIDEGATE_TEST_ES_URL
		;;
	os)
		E_NAME=os
		E_VERSION=2.19.6
		E_GROUP=org.opensearch.distribution.integ-test-zip
		E_ARTIFACT=opensearch
		E_PORT=19201
		E_TPORT=19301
		E_HEAP=${TIDEGATE_OS_HEAP:-1g}
		E_ENV_PREFIX=OPENSEARCH
		E_JAVA_MAX=23 # OpenSearch 2.x needs the Security Manager, gone in JDK 24
		E_URL_VAR=TIDEGATE_TEST_OS_URL
		;;
	*) die "unknown engine $1" ;;
	esac
	E_JAVA_MIN=17
	E_DIR=$SVC_DIR/$E_NAME
	E_HOME=$E_DIR/$E_ARTIFACT-$E_VERSION
	E_ZIP=$DIST_DIR/$E_ARTIFACT-$E_VERSION.zip
	E_PIDFILE=$E_DIR/run/$E_NAME.pid
	E_LOG=$E_DIR/logs/tidegate-test.log
	E_LAUNCH_LOG=$E_DIR/logs/launcher.log
	E_URL=http://127.0.0.1:$E_PORT
}

e_pid() {
	local pid
	[[ -r $E_PIDFILE ]] || return 1
	pid=$(tr -dc '0-9' <"$E_PIDFILE")
	alive "$pid" "$E_HOME" || return 1
	echo "$pid"
}

# e_version: the node version. Not from GET /: the ES integ-test-zip lacks the rest-root module.
e_version() {
	curl -fsS -m 5 "$E_URL/_nodes/_local?filter_path=nodes.*.version" 2>/dev/null |
		sed -n 's/.*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1
}

e_healthy() {
	curl -fsS -m 15 -o /dev/null \
		"$E_URL/_cluster/health?wait_for_status=yellow&timeout=10s" 2>/dev/null
}

e_status() {
	local pid v
	if pid=$(e_pid); then
		v=$(e_version || true)
		if [[ -n $v ]]; then
			echo "$E_NAME  running  pid=$pid  url=$E_URL  version=$v"
		else
			echo "$E_NAME  running (not answering HTTP)  pid=$pid  url=$E_URL"
		fi
		return 0
	fi
	echo "$E_NAME  stopped"
	return 1
}

java_major() {
	local home=$1 v=""
	[[ -x $home/bin/java ]] || return 1
	if [[ -r $home/release ]]; then
		v=$(sed -n 's/^JAVA_VERSION="\(.*\)"/\1/p' "$home/release")
	fi
	if [[ -z $v ]]; then
		v=$("$home/bin/java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)
	fi
	v=${v#1.} # 1.8.0 -> 8.0
	v=${v%%[.+-]*}
	[[ $v =~ ^[0-9]+$ ]] || return 1
	echo "$v"
}

# e_java_home: print the JDK to use: TIDEGATE_JAVA_HOME, else the lowest supported major.
e_java_home() {
	local c m best="" best_m=999 candidates=()
	if [[ -n ${TIDEGATE_JAVA_HOME:-} ]]; then
		m=$(java_major "$TIDEGATE_JAVA_HOME") || die "TIDEGATE_JAVA_HOME=$TIDEGATE_JAVA_HOME has no usable bin/java"
		((m >= E_JAVA_MIN && m <= E_JAVA_MAX)) ||
			die "$E_NAME needs Java $E_JAVA_MIN..$E_JAVA_MAX, TIDEGATE_JAVA_HOME is Java $m"
		echo "$TIDEGATE_JAVA_HOME"
		return 0
	fi
	for c in /usr/lib/jvm/*/ "${JAVA_HOME:-}"; do
		[[ -n $c ]] && candidates+=("${c%/}")
	done
	if command -v java >/dev/null 2>&1; then
		c=$(readlink -f "$(command -v java)")
		candidates+=("${c%/bin/java}")
	fi
	for c in "${candidates[@]}"; do
		m=$(java_major "$c") || continue
		if ((m >= E_JAVA_MIN && m <= E_JAVA_MAX && m < best_m)); then
			best=$(readlink -f "$c")
			best_m=$m
		fi
	done
	[[ -n $best ]] || return 1
	echo "$best"
}

e_fetch() {
	local m2 tmp url
	[[ -s $E_ZIP ]] && return 0
	install -d "$DIST_DIR"
	m2=$HOME/.m2/repository/${E_GROUP//.//}/$E_ARTIFACT/$E_VERSION/$E_ARTIFACT-$E_VERSION.zip
	if [[ -s $m2 ]]; then
		cp "$m2" "$E_ZIP.tmp"
	elif command -v mvn >/dev/null 2>&1; then
		log "$E_NAME: downloading $E_GROUP:$E_ARTIFACT:$E_VERSION:zip with Maven"
		mvn -q -B dependency:copy -Dartifact="$E_GROUP:$E_ARTIFACT:$E_VERSION:zip" \
			-DoutputDirectory="$DIST_DIR" -Dmdep.overWriteReleases=true >&2 9>&- || return 1
		return 0
	else
		ensure_cmd curl curl
		ensure_pkgs ca-certificates
		url=https://repo1.maven.org/maven2/${E_GROUP//.//}/$E_ARTIFACT/$E_VERSION/$E_ARTIFACT-$E_VERSION.zip
		log "$E_NAME: downloading $url"
		curl -fsSL --retry 3 -o "$E_ZIP.tmp" "$url" || return 1
	fi
	mv "$E_ZIP.tmp" "$E_ZIP" || return 1
}

e_install() {
	local tmp
	[[ -x $E_HOME/bin/$E_ARTIFACT ]] && return 0
	e_fetch || { log "$E_NAME: download failed"; return 1; }
	ensure_cmd unzip unzip
	log "$E_NAME: unpacking $E_ZIP"
	tmp=$E_DIR/.unpack
	rm -rf "$tmp"
	install -d "$tmp"
	unzip -q "$E_ZIP" -d "$tmp" || { log "$E_NAME: unzip failed (corrupt $E_ZIP? delete it)"; return 1; }
	[[ -x $tmp/$E_ARTIFACT-$E_VERSION/bin/$E_ARTIFACT ]] || {
		log "$E_NAME: unexpected zip layout (no $E_ARTIFACT-$E_VERSION/bin/$E_ARTIFACT)"
		return 1
	}
	mv "$tmp/$E_ARTIFACT-$E_VERSION" "$E_HOME" || return 1
	rm -rf "$tmp"
}

e_start() {
	local pid java settings=() deadline
	if pid=$(e_pid); then
		e_wait_healthy "$pid" || return 1
		e_status
		return 0
	fi
	ensure_cmd curl curl
	ensure_cmd ps procps # bin/opensearch -d checks its child with ps
	if port_in_use "$E_PORT" || port_in_use "$E_TPORT"; then
		log "$E_NAME: port $E_PORT or $E_TPORT is used by another process"
		return 1
	fi
	install -d "$E_DIR"
	e_install || return 1
	if ! java=$(e_java_home); then
		ensure_pkgs openjdk-17-jre-headless
		java=$(e_java_home) || { log "$E_NAME: no JDK $E_JAVA_MIN..$E_JAVA_MAX found"; return 1; }
	fi
	ensure_svc_user
	install -d "$E_DIR/data" "$E_DIR/logs" "$E_DIR/run" "$E_DIR/tmp"
	if is_root; then
		[[ $(stat -c %U "$E_HOME") == "$SVC_USER" ]] || chown -R "$SVC_USER:" "$E_HOME"
		chown "$SVC_USER:" "$E_DIR" "$E_DIR/data" "$E_DIR/logs" "$E_DIR/run" "$E_DIR/tmp"
		ensure_traversable "$SVC_USER" "$E_HOME"
	fi
	rm -f "$E_PIDFILE"

	settings=(
		-E cluster.name=tidegate-test
		-E node.name="tidegate-$E_NAME"
		-E discovery.type=single-node
		-E http.host=127.0.0.1 -E http.port="$E_PORT"
		-E transport.host=127.0.0.1 -E transport.port="$E_TPORT"
		-E path.data="$E_DIR/data" -E path.logs="$E_DIR/logs"
		-E action.destructive_requires_name=false
		-E cluster.routing.allocation.disk.threshold_enabled=false
	)
	# The ES integ-test-zip ships x-pack-security: without this it would auto-configure TLS
	# and passwords. The OpenSearch one ships no security plugin (disable it if it ever does).
	[[ -d $E_HOME/modules/x-pack-security ]] && settings+=(-E xpack.security.enabled=false)
	[[ -d $E_HOME/plugins/opensearch-security ]] && settings+=(-E plugins.security.disabled=true)

	log "$E_NAME: starting $E_ARTIFACT $E_VERSION with Java $(java_major "$java") ($java)"
	: >"$E_LAUNCH_LOG"
	is_root && chown "$SVC_USER:" "$E_LAUNCH_LOG"
	# ES/OpenSearch want >= 65535 open files; raise the limit when we may (root), best effort.
	if ! (
		ulimit -n 65536 2>/dev/null || true
		run_as "$SVC_USER" env -u JAVA_HOME -u JAVA_TOOL_OPTIONS \
			"${E_ENV_PREFIX}_JAVA_HOME=$java" \
			"${E_ENV_PREFIX}_JAVA_OPTS=-Xms$E_HEAP -Xmx$E_HEAP" \
			"${E_ENV_PREFIX}_TMPDIR=$E_DIR/tmp" \
			timeout "$START_TIMEOUT" "$E_HOME/bin/$E_ARTIFACT" -d -p "$E_PIDFILE" "${settings[@]}"
	) </dev/null >>"$E_LAUNCH_LOG" 2>&1; then
		log "$E_NAME: launcher failed"
		tail_log "$E_LAUNCH_LOG" "$E_LOG"
		return 1
	fi
	deadline=$((SECONDS + 30))
	until pid=$(e_pid); do
		if ((SECONDS >= deadline)); then
			log "$E_NAME: no live process in $E_PIDFILE"
			tail_log "$E_LAUNCH_LOG" "$E_LOG"
			return 1
		fi
		sleep 1
	done
	e_wait_healthy "$pid" || return 1
	e_status
}

e_wait_healthy() {
	local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
	until e_healthy; do
		if ! alive "$pid" "$E_HOME"; then
			log "$E_NAME: process $pid exited during startup"
			tail_log "$E_LAUNCH_LOG" "$E_LOG"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "$E_NAME: cluster not yellow after ${START_TIMEOUT}s"
			tail_log "$E_LAUNCH_LOG" "$E_LOG"
			return 1
		fi
		sleep 2
	done
}

e_stop() {
	local pid deadline
	if ! pid=$(e_pid); then
		rm -f "$E_PIDFILE"
		echo "$E_NAME  stopped"
		return 0
	fi
	log "$E_NAME: stopping pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + 60))
	while alive "$pid" "$E_HOME" && ((SECONDS < deadline)); do
		sleep 1
	done
	if alive "$pid" "$E_HOME"; then
		log "$E_NAME: still running after 60s, sending KILL"
		kill -KILL "$pid" 2>/dev/null || true
		deadline=$((SECONDS + 10))
		while alive "$pid" "$E_HOME" && ((SECONDS < deadline)); do
			sleep 1
		done
	fi
	if alive "$pid" "$E_HOME"; then
		log "$E_NAME: pid $pid did not exit"
		return 1
	fi
	rm -f "$E_PIDFILE"
	echo "$E_NAME  stopped"
}

# ---------------------------------------------------------------------------------------
# Dispatch

svc() { # svc ACTION NAME
	case $2 in
	pg) "pg_$1" ;;
	es | os) engine "$2" && "e_$1" ;;
	esac
}

write_env() {
	local tmp=$ENV_FILE.tmp n
	{
		echo "# Written by scripts/services.sh: the services running now. Use: . .services/env"
		if pg_pid >/dev/null; then echo "export TIDEGATE_TEST_PG_DSN='$PG_DSN'"; fi
		for n in es os; do
			engine "$n"
			if e_pid >/dev/null; then echo "export $E_URL_VAR=$E_URL"; fi
		done
	} >"$tmp"
	mv "$tmp" "$ENV_FILE"
}

main() {
	local action=${1:-} names=() n rc=0
	[[ -n $action ]] || usage
	shift
	for n in "$@"; do
		case $n in
		pg | es | os) names+=("$n") ;;
		*) log "unknown service '$n' (want pg, es or os)"; usage ;;
		esac
	done
	((${#names[@]} > 0)) || names=("${ALL_SERVICES[@]}")

	case $action in
	status)
		for n in "${names[@]}"; do
			svc status "$n" || rc=3
		done
		return $rc
		;;
	start | stop)
		install -d "$SVC_DIR"
		exec 9>"$SVC_DIR/.lock"
		flock 9 # one start/stop at a time (daemons get fd 9 closed)
		for n in "${names[@]}"; do
			if ! svc "$action" "$n"; then
				log "$n: $action FAILED"
				rc=1
			fi
		done
		write_env
		return $rc
		;;
	-h | --help | help) usage ;;
	*) log "unknown action '$action'"; usage ;;
	esac
}

main "$@"
