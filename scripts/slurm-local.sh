#!/usr/bin/env bash
# A single-node Slurm cluster on 127.0.0.1, without systemd, for tide's tests and for trying the
# slurm provisioner (docs/slurm.md). Everything lives in DIR: config, state, logs, pid files and
# its own munge socket, so several clusters can run side by side (one per test run).
#
#   scripts/slurm-local.sh start DIR   start munged, slurmctld and slurmd; wait until the node
#                                      is idle; print `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm-local.sh stop DIR    cancel every job, stop the daemons by their pid files
#
# Needs root (slurmd runs jobs as their users) and the Debian packages slurmctld, slurmd,
# slurm-client and munge (scripts/install-deps.sh installs them). The node has 2 fake GPUs
# (GRES gpu:fake:2 on /dev/null and /dev/zero): a job with --gres=gpu:1 gets
# CUDA_VISIBLE_DEVICES from Slurm as on a real GPU node.
#
# The node claims SLURM_LOCAL_CPUS CPUs (default 8, whatever the machine has: slurmd is told to
# trust the config), SLURM_LOCAL_GPUS fake GPUs (default 2, at most 5) and SLURM_LOCAL_MEMORY MB
# (default 8000); a job without --mem gets 100 MB per CPU.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

# Waits up to $1 seconds for "$2..." to succeed.
wait_for() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.1
  done
}

# Kills the process whose pid is in file $1 (if it runs) and waits for it to exit.
stop_pid_file() {
  local file=$1 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_for 10 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# Shows the last lines of each log in DIR (to explain a failed start).
show_logs() {
  for log in "$dir"/*.log; do
    [ -f "$log" ] || continue
    echo "--- $log" >&2
    tail -20 "$log" >&2
  done
}

start() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-local: must run as root (slurmd starts jobs as their users)" >&2
    exit 1
  fi
  for prog in munged slurmctld slurmd sinfo sbatch; do
    if ! command -v "$prog" >/dev/null; then
      echo "slurm-local: $prog not found: install slurmctld slurmd slurm-client munge" \
        "(scripts/install-deps.sh)" >&2
      exit 1
    fi
  done
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  stop  # whatever an earlier start in DIR left running
  rm -rf "$dir/state" "$dir/spool"
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
  chown munge:munge "$dir/munge"
  chmod 755 "$dir/munge"

  # munge: the machine's key (created once), our own socket.
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    /usr/sbin/mungekey -c -k /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 600 /etc/munge/munge.key
  fi
  runuser -u munge -- /usr/sbin/munged --socket="$dir/munge/munge.sock" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" --key-file=/etc/munge/munge.key
  cp "$dir/munge/munged.pid" "$dir/munged.pid"

  # Two free ports for slurmctld and slurmd (bound then released: a clash fails the start).
  read -r ctld_port slurmd_port < <(free_ports)
  local host cpus gpus memory gpu_files
  host=$(hostname -s)
  cpus=${SLURM_LOCAL_CPUS:-8}
  gpus=${SLURM_LOCAL_GPUS:-2}
  memory=${SLURM_LOCAL_MEMORY:-8000}
  # One distinct device file per fake GPU.
  local devices=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom)
  if ((gpus < 1 || gpus > ${#devices[@]})); then
    echo "slurm-local: SLURM_LOCAL_GPUS must be 1 to ${#devices[@]}, got $gpus" >&2
    exit 1
  fi
  gpu_files=$(
    IFS=,
    echo "${devices[*]:0:gpus}"
  )

  cat >"$dir/slurm.conf" <<EOF
ClusterName=tide$(basename "$dir" | tr -cd 'a-z0-9' | cut -c1-20)
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
ReturnToService=2
GresTypes=gpu
MpiDefault=none
SlurmdParameters=config_overrides
DefMemPerCPU=100
KillWait=5
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:fake:$gpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  echo "NodeName=$host Name=gpu Type=fake File=$gpu_files" >"$dir/gres.conf"
  cat >"$dir/env" <<EOF
export SLURM_CONF=$dir/slurm.conf
EOF
  export SLURM_CONF=$dir/slurm.conf

  if ! slurmctld -i -f "$SLURM_CONF" || ! wait_for 10 test -s "$dir/slurmctld.pid"; then
    echo "slurm-local: slurmctld did not start" >&2
    show_logs
    exit 1
  fi
  if ! slurmd -f "$SLURM_CONF" -N "$host" || ! wait_for 10 test -s "$dir/slurmd.pid"; then
    echo "slurm-local: slurmd did not start" >&2
    show_logs
    exit 1
  fi
  if ! wait_for 30 node_idle; then
    echo "slurm-local: the node did not become idle: $(sinfo -h -o '%T %E' 2>&1)" >&2
    show_logs
    exit 1
  fi
  # The controller's first scheduling pass comes a few seconds after it starts; run it now with a
  # job that does nothing, so that the first real job starts as fast as the later ones.
  sbatch --quiet --output=/dev/null --job-name=warm-up --wrap true
  if ! wait_for 30 bash -c '[ -z "$(squeue -h -o %i 2>/dev/null)" ]'; then
    echo "slurm-local: a first job did not run: $(squeue 2>&1)" >&2
    show_logs
    exit 1
  fi
  echo "export SLURM_CONF=$SLURM_CONF"
}

node_idle() {
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]
}

# Prints two distinct free TCP ports on 127.0.0.1.
free_ports() {
  local a b
  a=$(free_port)
  b=$(free_port)
  while [ "$b" = "$a" ]; do b=$(free_port); done
  echo "$a $b"
}

# A port from 10000-32767 (below Linux's ephemeral range) where nothing listens.
free_port() {
  local p
  while :; do
    p=$((10000 + RANDOM % 22768))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}

stop() {
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/slurm.conf" ] && [ -s "$dir/slurmctld.pid" ]; then
    export SLURM_CONF=$dir/slurm.conf
    # No job left behind: cancel them all, then give slurmd a moment to end their processes.
    scancel --full --quiet --partition=debug 2>/dev/null || true
    wait_for 10 bash -c '[ -z "$(squeue -h -o %i 2>/dev/null)" ]' || true
  fi
  stop_pid_file "$dir/slurmd.pid"
  stop_pid_file "$dir/slurmctld.pid"
  stop_pid_file "$dir/munged.pid"
  rm -f "$dir/munge/munged.pid"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
