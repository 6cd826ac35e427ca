#!/usr/bin/env bash
# `make serve`: action server on :5055 and Rasa (REST + --enable-api) on :5005 in the foreground;
# Ctrl-C or SIGTERM stops both. With TELEGRAM_BOT_TOKEN set, the Telegram bridge runs too.
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore SQLALCHEMY_SILENCE_UBER_WARNING=1
mkdir -p var
pids=()
stop() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop INT TERM EXIT
SANIC_HOST=127.0.0.1 .venv/bin/rasa run actions --port 5055 --actions actions &
pids+=($!)
.venv/bin/rasa run --model models/mentorwijzer.tar.gz --enable-api --port "${RASA_PORT:-5005}" \
  --endpoints endpoints.yml --credentials credentials.yml &
pids+=($!)
if [ -n "${TELEGRAM_BOT_TOKEN:-}" ]; then
  until curl -fs "http://127.0.0.1:${RASA_PORT:-5005}/status" >/dev/null 2>&1; do sleep 1; done
  .venv/bin/mentorwijzer telegram &
  pids+=($!)
fi
wait -n "${pids[@]}"
