"""The notification services other apps call (see also evaluation.py for the event sources)."""
