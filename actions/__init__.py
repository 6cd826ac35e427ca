"""Thin Rasa SDK adapters; all domain logic lives in bot/.

Importing this package (what `rasa run actions` does at start-up) refuses a production database
whose schema is behind, with a message that says to run `mentorwijzer db upgrade`.
"""
from bot.db_migrate import ensure_ready

ensure_ready()
