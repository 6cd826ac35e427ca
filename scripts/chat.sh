#!/usr/bin/env bash
# `make chat`: action server in the background, `rasa shell` in the foreground; the action
# server is stopped when the shell ends (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore SQLALCHEMY_SILENCE_UBER_WARNING=1
mkdir -p var
SANIC_HOST=127.0.0.1 .venv/bin/rasa run actions --port 5055 --actions actions >var/actions.log 2>&1 &
actions_pid=$!
trap 'kill $actions_pid 2>/dev/null; wait $actions_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fs http://127.0.0.1:5055/health >/dev/null 2>&1 && break
  kill -0 $actions_pid 2>/dev/null || { echo "action server failed, see var/actions.log"; exit 1; }
  sleep 0.5
done
echo "Mentorwijzer: typ 'hoi' of 'help' (Ctrl-C of /stop om te stoppen)."
.venv/bin/rasa shell --model models/mentorwijzer.tar.gz --endpoints endpoints.yml --quiet
