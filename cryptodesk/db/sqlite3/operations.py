"""Decimals as exact text in, exact Decimals out, numeric comparison and ordering in SQL."""

import decimal

from django.db.backends.sqlite3 import operations

from cryptodesk.money import CONTEXT

# Lookups that compare values: the column is read as a number for them (text would compare "-5" > "0").
NUMERIC_LOOKUPS = frozenset({"exact", "gt", "gte", "lt", "lte", "range", "in"})
_FLOAT_DECIMAL = decimal.Context(prec=15).create_decimal_from_float


class DatabaseOperations(operations.DatabaseOperations):
    compiler_module = "cryptodesk.db.sqlite3.compiler"

    def adapt_decimalfield_value(self, value, max_digits=None, decimal_places=None):
        if isinstance(value, decimal.Decimal):
            return format(value, "f")  # plain digits, never an exponent
        return value

    def lookup_cast(self, lookup_type, internal_type=None):
        if internal_type == "DecimalField" and lookup_type in NUMERIC_LOOKUPS:
            return "CAST(%s AS REAL)"
        return super().lookup_cast(lookup_type, internal_type)

    def get_decimalfield_converter(self, expression):
        places = getattr(expression.output_field, "decimal_places", None)
        quantum = decimal.Decimal(1).scaleb(-places) if places is not None else None

        def converter(value, expression, connection):
            if value is None:
                return None
            if isinstance(value, float):
                number = _FLOAT_DECIMAL(value)  # an SQL expression computed in floating point
            else:
                number = decimal.Decimal(value)  # exact: the stored text (or an integer)
            if quantum is not None:
                number = number.quantize(quantum, context=CONTEXT)
            return number

        return converter
