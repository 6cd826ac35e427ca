#!/usr/bin/env bash
# `make serve`: action server on 127.0.0.1:5055 and Rasa on $MENTORWIJZER_HOST:5005 (default
# 127.0.0.1) in the foreground; Ctrl-C or SIGTERM stops both. Only configured channels start
# (bot/serving.py): REST always; Teams with MICROSOFT_APP_ID + MICROSOFT_APP_PASSWORD; the Telegram
# bridge with TELEGRAM_BOT_TOKEN. Rasa's HTTP API only with a token (RASA_API_TOKEN or
# `mentorwijzer api-token`), and then it requires it. Ports: RASA_PORT, MENTORWIJZER_ACTIONS_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore SQLALCHEMY_SILENCE_UBER_WARNING=1
mkdir -p var
RASA_PORT=${RASA_PORT:-5005}
ACTIONS_PORT=${MENTORWIJZER_ACTIONS_PORT:-5055}
export MENTORWIJZER_ACTION_URL="http://127.0.0.1:$ACTIONS_PORT/webhook"
export MENTORWIJZER_RASA_URL="http://127.0.0.1:$RASA_PORT"
eval "$(.venv/bin/mentorwijzer serve-env --credentials-out "${MENTORWIJZER_VAR_DIR:-var}/run/credentials.yml")"
api=()
if [ -n "$RASA_API_TOKEN" ]; then api=(--enable-api --auth-token "$RASA_API_TOKEN"); fi
pids=()
stop() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop INT TERM EXIT
.venv/bin/python -m actions.server --host 127.0.0.1 --port "$ACTIONS_PORT" &
pids+=($!)
.venv/bin/rasa run --model models/mentorwijzer.tar.gz --interface "$MENTORWIJZER_HOST" --port "$RASA_PORT" \
  "${api[@]}" --endpoints endpoints.yml --credentials "$MENTORWIJZER_CREDENTIALS" &
pids+=($!)
if [ -n "$MENTORWIJZER_TELEGRAM" ]; then
  until curl -fs "http://127.0.0.1:$RASA_PORT/webhooks/rest/" >/dev/null 2>&1; do sleep 1; done
  .venv/bin/mentorwijzer telegram &
  pids+=($!)
fi
wait -n "${pids[@]}"
