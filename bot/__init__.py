"""Mentorwijzer domain code: knowledge base, questionnaire engine, storage, channels, CLI.

Nothing in this package imports rasa or rasa_sdk, so it can be tested and reused on its own.
"""
