#!/bin/sh
# tuna's remote wrapper (uploaded by the ssh runner; POSIX sh). One attempt folder per call:
#   launch DIR NONCE  start DIR's job detached; print `claimed PID NONCE` or `taken PID NONCE`
#   run DIR NONCE     (internal) claim DIR, run its job in its own session, record exit.json
#   poll DIR...       for each DIR: `== DIR`, then `exit`, `running`, `dead`, `unclaimed` or
#                     `missing`, then the log sizes, then exit.json when there is one
#   cancel DIR        leave a cancel marker and ask the supervisor to stop the job
# DIR holds: script, env, timeout (seconds, optional), grace, work/; the wrapper adds claim
# (created atomically: first writer wins), pid, stdout.log, stderr.log, timedout, exit.json.
set -u
self=$0
case $self in /*) ;; *) self=$PWD/$self ;; esac
cmd=$1
dir=$2

now_ms() { echo "$(date +%s)000"; }
poll_one() {
  if [ -f exit.json ]; then echo exit; sizes; cat exit.json
  elif [ ! -e claim ]; then echo unclaimed; sizes
  else
    read -r sup owner < claim
    if kill -0 "$sup" 2>/dev/null; then echo running; sizes
    elif [ -f exit.json ]; then echo exit; sizes; cat exit.json
    else echo dead; sizes
    fi
  fi
}

sizes() {
  o=0; e=0
  [ -f stdout.log ] && o=$(wc -c < stdout.log)
  [ -f stderr.log ] && e=$(wc -c < stderr.log)
  echo $o $e
}

if [ "$cmd" = poll ]; then
  shift
  for d in "$@"; do
    echo "== $d"
    if cd "$d" 2>/dev/null; then poll_one; else echo missing; echo 0 0; fi
  done
  exit 0
fi
cd "$dir" || { echo "error cannot enter $dir"; exit 3; }
case $cmd in
launch)
  nonce=$3
  if [ ! -e claim ]; then
    setsid sh "$self" run "$dir" "$nonce" </dev/null >>wrap.log 2>&1 &
    n=0
    while [ ! -e claim ]; do
      n=$((n + 1))
      if [ $n -gt 2000 ]; then echo "error the supervisor did not start: $(tail -n 3 wrap.log)"; exit 3; fi
      sleep 0.005
    done
  fi
  read -r sup owner < claim
  if [ "$owner" = "$nonce" ]; then echo "claimed $sup $owner"; else echo "taken $sup $owner"; fi
  ;;
run)
  nonce=$3
  echo "$$ $nonce" > "claim.$$" || exit 3
  if ! ln "claim.$$" claim 2>/dev/null; then rm -f "claim.$$"; exit 0; fi
  rm -f "claim.$$"
  started=$(now_ms)
  job=
  finish() {
    printf '{"outcome":%s,"started_ms":%s,"ended_ms":%s,"child_pid":%s}\n' \
      "$1" "$started" "$(now_ms)" "${job:-null}" > exit.json.tmp
    mv exit.json.tmp exit.json
    exit 0
  }
  [ -e cancel ] && finish '{"kind":"cancelled"}'
  grace=10
  [ -f grace ] && read -r grace < grace
  stop() {
    kill -TERM -"$job" 2>/dev/null
    ( sleep "$grace"; kill -KILL -"$job" 2>/dev/null ) &
  }
  trap stop TERM INT HUP
  # The logs may hold a secret before tuna masks it on the way back: private to the user.
  ( umask 077; : >>stdout.log; : >>stderr.log )
  ( . ./env; cd work && exec setsid bash -euo pipefail ../script ) </dev/null >>stdout.log 2>>stderr.log &
  job=$!
  echo "$job" > pid
  wd=
  if [ -f timeout ]; then
    read -r limit < timeout
    (
      trap 'kill $s 2>/dev/null; exit 0' TERM
      sleep "$limit" & s=$!; wait $s || exit 0
      : > timedout
      kill -TERM -"$job" 2>/dev/null
      sleep "$grace" & s=$!; wait $s || exit 0
      kill -KILL -"$job" 2>/dev/null
    ) &
    wd=$!
  fi
  while :; do
    wait "$job"
    rc=$?
    kill -0 "$job" 2>/dev/null || break
  done
  kill -KILL -"$job" 2>/dev/null
  [ -n "$wd" ] && kill "$wd" 2>/dev/null
  if [ -e cancel ]; then finish '{"kind":"cancelled"}'
  elif [ -e timedout ]; then finish '{"kind":"timed-out"}'
  elif [ "$rc" -gt 128 ] && [ "$rc" -lt 192 ]; then finish "{\"kind\":\"signaled\",\"signal\":$((rc - 128))}"
  else finish "{\"kind\":\"exited\",\"code\":$rc}"
  fi
  ;;
cancel)
  : > cancel
  if [ -s claim ]; then read -r sup owner < claim; kill -TERM "$sup" 2>/dev/null; fi
  echo ok
  ;;
*)
  echo "error unknown command $cmd"; exit 2
  ;;
esac
