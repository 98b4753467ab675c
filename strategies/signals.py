"""What strategies tell the rest of the desk; receivers that reach outside the database act on commit."""

from django.dispatch import Signal

backtest_changed = Signal()  # backtest_ids=<list of ids>: queued, running (with progress), succeeded or failed
