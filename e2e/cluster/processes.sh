# shellcheck shell=bash
# e2e/cluster.sh, processes: start and stop the components with pid files (a pid is only ours
# while its /proc cmdline starts with our binary), wait for conditions, lock the run directory.

alive() { # $1 = pid; a zombie (exited, not yet reaped by its parent) counts as dead
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

pid_of() { # $1 = name -> prints pid if the process started by us is alive
  local f="$PIDS/$1.pid" pid exe
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  exe="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ -f "$PIDS/$1.cmd" && "$exe" == "$(cat "$PIDS/$1.cmd")"* ]] || return 1
  echo "$pid"
}

start_proc() { # $1 = name, $2.. = command
  local name="$1"; shift
  if pid_of "$name" >/dev/null; then log "$name already running (pid $(pid_of "$name"))"; return 0; fi
  mkdir -p "$LOGS" "$PIDS"
  [[ -f "$LOGS/$name.log" ]] && mv -f "$LOGS/$name.log" "$LOGS/$name.log.prev"
  # setsid: own session, so the process outlives the shell (or pytest) that ran `up`
  # (9>&-: the daemons must not inherit the run-dir lock)
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  local pid=$!
  echo "$pid" >"$PIDS/$name.pid"
  printf '%s' "$1" >"$PIDS/$name.cmd"
  sleep 0.3
  alive "$pid" || { tail -n 30 "$LOGS/$name.log" >&2; die "$name exited at once, see $LOGS/$name.log"; }
  log "started $name (pid $pid, log $LOGS/$name.log)"
}

stop_procs() { # $@ = names; SIGTERM all, wait up to 10s, then SIGKILL what is left
  local name pid i alive
  declare -A pids=()
  for name in "$@"; do
    if pid="$(pid_of "$name")"; then pids[$name]=$pid; kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for i in $(seq 1 100); do
    alive=0
    for name in "${!pids[@]}"; do alive "${pids[$name]}" && alive=1; done
    [[ $alive -eq 0 ]] && break
    sleep 0.1
  done
  for name in "$@"; do
    if [[ -n "${pids[$name]:-}" ]]; then
      pid=${pids[$name]}
      if alive "$pid"; then log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
      log "stopped $name (pid $pid)"
    fi
    rm -f "$PIDS/$name.pid" "$PIDS/$name.cmd"
  done
}
stop_proc() { stop_procs "$1"; }

wait_until() { # $1 = timeout seconds, $2 = description, $3.. = command
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || die "timed out after ${timeout}s waiting for $what"
    # give up at once when a component we wait on has died
    if [[ -n "${WATCH:-}" ]] && ! pid_of "$WATCH" >/dev/null; then
      tail -n 30 "$LOGS/$WATCH.log" >&2 || true
      die "$WATCH exited while waiting for $what, see $LOGS/$WATCH.log"
    fi
    sleep 0.5
  done
}

port_free() { ! (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }


lock_run_dir() { # serialize up/down on one run directory (e.g. two pytest sessions at once)
  mkdir -p "$RUN"
  if command -v flock >/dev/null; then
    exec 9>"$RUN/.lock"
    flock -w 600 9 || die "another cluster.sh holds $RUN/.lock"
  fi
}
