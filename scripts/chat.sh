#!/usr/bin/env bash
# `make chat`: action server in the background, `rasa shell` in the foreground (on 127.0.0.1, or
# MENTORWIJZER_HOST); the action server is stopped when the shell ends (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore SQLALCHEMY_SILENCE_UBER_WARNING=1
mkdir -p var
ACTIONS_PORT=${MENTORWIJZER_ACTIONS_PORT:-5055}
export MENTORWIJZER_ACTION_URL="http://127.0.0.1:$ACTIONS_PORT/webhook"
eval "$(.venv/bin/mentorwijzer serve-env --credentials-out "${MENTORWIJZER_VAR_DIR:-var}/run/credentials.yml" 2>/dev/null)"
.venv/bin/python -m actions.server --host 127.0.0.1 --port "$ACTIONS_PORT" >var/actions.log 2>&1 &
actions_pid=$!
trap 'kill $actions_pid 2>/dev/null; wait $actions_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$ACTIONS_PORT/health" >/dev/null 2>&1 && break
  kill -0 $actions_pid 2>/dev/null || { echo "action server failed, see var/actions.log"; exit 1; }
  sleep 0.5
done
echo "Mentorwijzer: typ 'hoi' of 'help' (Ctrl-C of /stop om te stoppen)."
.venv/bin/rasa shell --model models/mentorwijzer.tar.gz --endpoints endpoints.yml --interface "$MENTORWIJZER_HOST" --quiet
