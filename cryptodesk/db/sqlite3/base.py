"""SQLite that stores decimals exactly.

Stock SQLite gives a `decimal` column NUMERIC affinity: a value such as 0.123456789012345678 is stored as a
REAL and comes back rounded to about 15 significant digits (a sell-all leaves dust). Here decimal columns have
TEXT affinity, so every stored digit survives, while comparisons, ordering and constraints still compare
numbers: they read the column through `CAST(… AS REAL)`. Sums are done in Python by the callers, as on any
SQLite. PostgreSQL needs none of this: its `numeric` is exact.
"""

from django.db.backends.sqlite3 import base

from .operations import DatabaseOperations


class DatabaseWrapper(base.DatabaseWrapper):
    data_types = {**base.DatabaseWrapper.data_types, "DecimalField": "decimal_text"}
    ops_class = DatabaseOperations
