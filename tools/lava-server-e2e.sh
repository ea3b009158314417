#!/usr/bin/env bash
# Opt-in end-to-end run of the LAVA server path on this machine, as root: a local lava-server
# (PostgreSQL and the server's daemons started by hand: no systemd here), one `qemu` device
# on a local worker, then `cargo xtask lava submit` against it (submit through the REST API,
# wait with progress, fetch the log, decode the frames into a result file), then `lava fetch`
# of the same job again, by its id. Everything this script starts is stopped at the end, on
# an error and on Ctrl-C; PostgreSQL only if it was not running before.
#
#   bash tools/lava-server-e2e.sh [KERNEL]     # KERNEL: default Debian's 6.12 x86_64 package
#
# Environment: FORKBENCH_LAVA_PORT (default 8765), FORKBENCH_LAVA_RESULTS (default a
# temporary directory; results/ would be the suite's own).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "lava-server-e2e: error: $*" >&2
    exit 2
}
[[ $(id -u) == 0 ]] || die "needs root (it installs packages and runs the server's daemons)"

bash tools/provision-guests.sh >/dev/null
bash tools/provision-lava.sh --server

port=${FORKBENCH_LAVA_PORT:-8765}
url="http://127.0.0.1:$port"
work=$(mktemp -d /tmp/forkbench-lava-e2e.XXXXXX)
# The server's daemons drop to the lavaserver user: they must reach their log files.
chmod 755 "$work"
results=${FORKBENCH_LAVA_RESULTS:-$work/results}
kernel=${1:-$(ls "${FORKBENCH_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/forkbench/kernels}"/linux-image-6.12.*-cloud-amd64-unsigned_*_amd64.deb | head -n 1)}
[[ -f $kernel ]] || die "no kernel '$kernel' (run tools/provision-guests.sh)"
worker=forkbench-worker
device=qemu-fb01
user=forkbench
logs=$work/logs
mkdir -p "$logs"
chown lavaserver: "$logs"

# Daemons started here: "name pid" lines; each is a process group leader (setsid), so its
# group is stopped as a whole, by its id.
pids=()
started_pg=""
cleanup() {
    local rc=$?
    { set +x; } 2>/dev/null
    trap - EXIT INT TERM
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM -- "-${pids[i]}" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$p" 2>/dev/null || true
    done
    if [[ -n $started_pg ]]; then
        pg_ctlcluster $started_pg stop || true
    fi
    echo "lava-server-e2e: stopped what it started (logs kept in $logs)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # start NAME CMD...: in its own session, output to $logs/NAME.log
    local name=$1
    shift
    setsid "$@" >"$logs/$name.log" 2>&1 &
    pids+=("$!")
    echo "started $name (pid $!)"
}

# PostgreSQL: the installed cluster, started by hand when it is down.
read -r ver cluster status < <(pg_lsclusters --no-header | awk 'NR == 1 {print $1, $2, $4}')
[[ -n ${ver:-} ]] || die "no PostgreSQL cluster (pg_lsclusters shows none)"
if [[ $status != online ]]; then
    pg_ctlcluster "$ver" "$cluster" start
    started_pg="$ver $cluster"
    echo "started PostgreSQL $ver/$cluster"
fi

manage() { lava-server manage "$@"; }
manage migrate --no-input >"$logs/migrate.log" 2>&1 || die "lava-server manage migrate failed (see $logs/migrate.log)"

# The server's daemons: the web app (REST API) and the scheduler.
start gunicorn /usr/bin/gunicorn3 lava_server.wsgi --bind "127.0.0.1:$port" --workers 2 \
    --worker-class eventlet -u lavaserver -g lavaserver --log-level info --timeout 120
start scheduler lava-server manage lava-scheduler --level INFO --log-file "$logs/scheduler-daemon.log"
for _ in $(seq 120); do
    curl -fs -o /dev/null "$url/api/v0.2/" && break
    sleep 0.5
done
curl -fsS -o /dev/null "$url/api/v0.2/" || die "the server did not answer at $url (see $logs/gunicorn.log)"

# A user with an API token, a worker, the qemu device type and one device. The device
# dictionary leaves QEMU's options to the job's context (which `lava job` fills).
manage users list --csv | grep -q "^$user," ||
    manage users add "$user" --superuser --staff --passwd "$(head -c 12 /dev/urandom | base64)" >/dev/null
token=$(manage tokens add --user "$user" --description "forkbench e2e")
manage device-types list | grep -qw qemu || manage device-types add qemu
manage workers list | grep -qw "$worker" || manage workers add "$worker"
worker_token=$(manage workers details "$worker" | awk '/^token/ {print $3}')
manage devices list --all | grep -qw "$device" || manage devices add --device-type qemu --worker "$worker" "$device"
cargo xtask lava device --for-server --out "/etc/lava-server/dispatcher-config/devices/$device.jinja2"
manage devices update --health GOOD "$device"
# Jobs a stopped earlier run left unfinished would run first: failed here.
for state in SUBMITTED SCHEDULING SCHEDULED RUNNING CANCELING; do
    for stale in $(manage jobs list --state "$state" | grep -oE ' - [0-9]+@' | tr -dc '0-9\n'); do
        manage jobs fail "$stale" && echo "failed stale job $stale"
    done
done
start worker lava-worker --level INFO --url "$url/" --name "$worker" --token "$worker_token" \
    --log-file "$logs/worker-daemon.log"

set -x
cargo xtask lava submit --kernel "$kernel" --config ci --quick --seed 24 \
    --server "$url" --token "$token" --artifacts "$work/artifacts" --results "$results"
job=$(curl -fsS -H "Authorization: Token $token" "$url/api/v0.2/jobs/?ordering=-id&limit=1" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["results"][0]["id"])')
cargo xtask lava fetch "$job" --server "$url" --results "$results" --label "refetch-$job"
cargo xtask table "$results"/"$device"/*.json
set +x
echo "lava-server-e2e: ok: job $job submitted, waited for and fetched into $results/$device/"
