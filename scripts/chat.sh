#!/usr/bin/env bash
# `make chat`: the action server and Rasa (REST channel) in the background on 127.0.0.1, their output
# (third-party warnings included) in var/chat.log, and the terminal client (bot/terminal_chat.py) in
# the foreground: the same servers and channel as `make serve`, so what you see is what Teams and
# Telegram get. Both servers stop when the chat ends, however it ends (/stop, Ctrl-C, Ctrl-D, a
# closed terminal, a failed start).
#
# Ports: RASA_PORT and MENTORWIJZER_ACTIONS_PORT when set, otherwise free ones (so `make chat` also
# works while `make serve` runs). MENTORWIJZER_CHAT_SENDER: the conversation id (default
# terminal-<login>: the next `make chat` continues the conversation, e.g. a paused mentorscan).
# Images and exports the bot sends are saved in var/chat-files/.
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore SQLALCHEMY_SILENCE_UBER_WARNING=1
VAR=${MENTORWIJZER_VAR_DIR:-var}
mkdir -p "$VAR"
LOG=$VAR/chat.log

free_port() { .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RASA_PORT=${RASA_PORT:-$(free_port)}
ACTIONS_PORT=${MENTORWIJZER_ACTIONS_PORT:-$(free_port)}
while [ "$ACTIONS_PORT" = "$RASA_PORT" ]; do ACTIONS_PORT=$(free_port); done
export MENTORWIJZER_ACTION_URL="http://127.0.0.1:$ACTIONS_PORT/webhook"
export MENTORWIJZER_RASA_URL="http://127.0.0.1:$RASA_PORT"

echo "Even geduld, Mentorwijzer start op…"
pids=()
alive() { local state; state=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${state:0:1}" != Z ]; }
stop() { # each server leads its own process group (setsid): TERM the group, KILL it after 10 s
  trap - INT TERM HUP EXIT
  local pid i running
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for i in $(seq 1 100); do
    running=0
    for pid in "${pids[@]}"; do alive "$pid" && running=1; done
    [ $running = 1 ] || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop; exit 129' HUP
trap stop EXIT
failed() {
  echo "Mentorwijzer kon niet starten ($1). De laatste regels van $LOG:" >&2
  tail -n 15 "$LOG" >&2
  exit 1
}

{ echo; echo "=== make chat $(date '+%Y-%m-%d %H:%M:%S'): Rasa on 127.0.0.1:$RASA_PORT, actions on :$ACTIONS_PORT"; } >>"$LOG"
exports=$(.venv/bin/mentorwijzer serve-env --credentials-out "$VAR/run/credentials.yml" 2>>"$LOG") \
  || failed "mentorwijzer serve-env faalde"
eval "$exports"
# Own sessions (setsid), no terminal: Ctrl-C and a closed window reach only the client and this script.
setsid .venv/bin/python -m actions.server --host 127.0.0.1 --port "$ACTIONS_PORT" </dev/null >>"$LOG" 2>&1 &
pids+=($!)
setsid .venv/bin/rasa run --model models/mentorwijzer.tar.gz --interface 127.0.0.1 --port "$RASA_PORT" \
  --endpoints endpoints.yml --credentials "$MENTORWIJZER_CREDENTIALS" </dev/null >>"$LOG" 2>&1 &
pids+=($!)

ready() { curl -fs -o /dev/null --max-time 2 "$1"; }
limit=${MENTORWIJZER_CHAT_START_SECONDS:-600}
deadline=$((SECONDS + limit))
until ready "http://127.0.0.1:$ACTIONS_PORT/health" && ready "http://127.0.0.1:$RASA_PORT/webhooks/rest/"; do
  for pid in "${pids[@]}"; do alive "$pid" || failed "een server stopte tijdens het opstarten"; done
  [ $SECONDS -lt $deadline ] || failed "na $limit s nog niet klaar"
  sleep 0.5
done

sender=()
if [ -n "${MENTORWIJZER_CHAT_SENDER:-}" ]; then sender=(--sender "$MENTORWIJZER_CHAT_SENDER"); fi
# Ctrl-C while the client waits for a reply ends the client cleanly (it catches it); this script
# then goes on to exit with the client's status, and the EXIT trap stops the servers.
trap : INT
status=0
.venv/bin/python -m bot.terminal_chat --url "http://127.0.0.1:$RASA_PORT" --files "$VAR/chat-files" "${sender[@]}" \
  || status=$?
exit $status
