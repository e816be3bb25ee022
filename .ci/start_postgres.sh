# Sourced by .ci/run: starts a throwaway PostgreSQL cluster on 127.0.0.1 and
# exports MAQUINA_TEST_PG_URL. Defines stop_postgres.
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$PG_BIN" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi
PG_DIR="$(mktemp -d /tmp/maquina-pg.XXXXXX)"
PG_PORT="${PG_PORT:-55432}"
chown postgres "$PG_DIR"
su postgres -c "$PG_BIN/initdb -D $PG_DIR/data -U postgres --auth=trust" >/dev/null
su postgres -c "$PG_BIN/pg_ctl -D $PG_DIR/data -o '-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR' -l $PG_DIR/log -w -t 30 start" >/dev/null
su postgres -c "$PG_BIN/createdb -h 127.0.0.1 -p $PG_PORT -U postgres maquina_test"
export MAQUINA_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/maquina_test"
echo "PostgreSQL ready at 127.0.0.1:$PG_PORT"

stop_postgres() {
    su postgres -c "$PG_BIN/pg_ctl -D $PG_DIR/data -m fast -w stop" >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
