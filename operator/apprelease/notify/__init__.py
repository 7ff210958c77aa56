"""Notifications (the README's "Notifications"): one message per (revision, outcome), derived from status.

`due.py` decides what is owed (pure), `messages.py` renders each receiver type's payload, `endpoint.py` sends
one request under the registry client's hostile-server rules, `notifier.py` is the step a reconcile runs.
"""
