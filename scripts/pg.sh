# Shared helpers: find (or install) PostgreSQL server binaries and run a private cluster.
# Sourced by scripts/test and scripts/up; not meant to be run directly.

# Prints the directory holding initdb/pg_ctl, installing Debian's postgresql package if none is found.
pg_bindir() {
  local d
  if [ -n "${PG_BIN_DIR:-}" ] && [ -x "$PG_BIN_DIR/initdb" ]; then echo "$PG_BIN_DIR"; return; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) /usr/local/pgsql/bin; do
    if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  done
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  echo "PostgreSQL server binaries not found; installing Debian's postgresql package" >&2
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2 || {
    echo "could not install PostgreSQL: install the server package (e.g. apt-get install postgresql) or set PG_BIN_DIR" >&2
    return 1
  }
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  done
  return 1
}

# PostgreSQL refuses to run as root; when we are root, run it as the 'postgres' system user.
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# pg_dir PREFERRED FALLBACK_PARENT: PREFERRED if the cluster's user can reach it, else a directory under
# FALLBACK_PARENT named after PREFERRED (as root, a checkout under a private home such as /root is
# out of reach of the postgres user).
pg_dir() {
  local preferred="$1" fallback="$2"
  if [ "$(id -u)" -ne 0 ] || runuser -u postgres -- test -x "$(dirname "$preferred")" 2>/dev/null; then
    echo "$preferred"
  else
    echo "$fallback/$(basename "$preferred")-$(echo "$preferred" | cksum | cut -d' ' -f1)"
  fi
}

# Prints the first port from $1 upwards that nothing listens on.
free_port() {
  local port="$1"
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

# pg_start DATADIR PORT: initialise (once) and start a private cluster listening on 127.0.0.1:PORT.
# A cluster left running in DATADIR (by a killed run) is stopped first.
pg_start() {
  local datadir="$1" port="$2" bindir
  bindir=$(pg_bindir) || return 1
  mkdir -p "$datadir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$datadir"
  if [ ! -f "$datadir/PG_VERSION" ]; then
    pg_as_owner "$bindir/initdb" -D "$datadir" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null || return 1
  fi
  if pg_as_owner "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
    pg_as_owner "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null
  fi
  pg_as_owner "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='' -c max_connections=400 -c shared_buffers=256MB -c fsync=${PG_FSYNC:-on}" >/dev/null
}

pg_stop() {
  local datadir="$1" bindir
  bindir=$(pg_bindir) || return 0
  pg_as_owner "$bindir/pg_ctl" -D "$datadir" -m fast stop >/dev/null 2>&1 || true
}
