"""ORDER BY a decimal column orders numbers, not text."""

from django.core.exceptions import FieldError
from django.db.models import FloatField
from django.db.models.expressions import OrderBy, Ref
from django.db.models.functions import Cast
from django.db.models.sql import compiler


class _NumericOrderMixin:
    def compile(self, node):
        if isinstance(node, OrderBy) and _is_decimal(node.expression):
            expression = node.expression
            if isinstance(expression, Ref):  # ORDER BY 1 / an alias: cast what it refers to
                expression = expression.source
            node = node.copy()
            node.expression = Cast(expression, FloatField())
        return super().compile(node)


def _is_decimal(expression) -> bool:
    try:
        return expression.output_field.get_internal_type() == "DecimalField"
    except FieldError:  # an expression without a resolvable type is not ours to cast
        return False


class SQLCompiler(_NumericOrderMixin, compiler.SQLCompiler):
    pass


class SQLInsertCompiler(_NumericOrderMixin, compiler.SQLInsertCompiler):
    pass


class SQLDeleteCompiler(_NumericOrderMixin, compiler.SQLDeleteCompiler):
    pass


class SQLUpdateCompiler(_NumericOrderMixin, compiler.SQLUpdateCompiler):
    pass


class SQLAggregateCompiler(_NumericOrderMixin, compiler.SQLAggregateCompiler):
    pass
