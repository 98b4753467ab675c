"""What portfolios tell the rest of the desk, inside the transaction that made the change.

Receivers that reach outside the database (the live socket: cryptodesk/realtime/publish.py) act on commit, so
nothing that rolls back is ever announced.
"""

from django.dispatch import Signal

order_changed = Signal()  # order=<Order>: placed, filled, cancelled or rejected
portfolio_changed = Signal()  # portfolio_id=<int>: its cash or holdings moved (a trade, a transfer)
notification_created = Signal()  # notification=<Notification>
