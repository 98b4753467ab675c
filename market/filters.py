"""Coin filters and ordering: one FilterSet for the API and the markets page."""

import django_filters
from django.db.models import F, Q, QuerySet

from cryptodesk.api.filters import BoundedNumberFilter

from .models import Coin

ORDERING = {
    "market_cap_rank": "market_cap_rank",
    "current_price": "quote__current_price",
    "market_cap": "quote__market_cap",
    "total_volume": "quote__total_volume",
    "price_change_percentage_24h": "quote__price_change_percentage_24h",
    "name": "name",
}


class CoinFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(method="filter_search", max_length=100, help_text="Name or symbol contains.")
    symbol = django_filters.CharFilter(field_name="symbol", lookup_expr="iexact", max_length=32)
    min_market_cap = BoundedNumberFilter(field_name="quote__market_cap", lookup_expr="gte")
    max_market_cap = BoundedNumberFilter(field_name="quote__market_cap", lookup_expr="lte")
    ordering = django_filters.ChoiceFilter(
        method="filter_ordering",
        choices=[(name, name) for name in ORDERING] + [(f"-{name}", f"-{name}") for name in ORDERING],
        help_text="Sort by one field; prefix with - for descending. Coins without a value come last.",
    )

    class Meta:
        model = Coin
        fields = ["search", "symbol", "min_market_cap", "max_market_cap", "ordering"]

    def filter_search(self, queryset: QuerySet[Coin], name: str, value: str) -> QuerySet[Coin]:
        value = value.strip()
        return queryset.filter(Q(name__icontains=value) | Q(symbol__icontains=value)) if value else queryset

    def filter_ordering(self, queryset: QuerySet[Coin], name: str, value: str) -> QuerySet[Coin]:
        descending = value.startswith("-")
        field = F(ORDERING[value.lstrip("-")])
        order = field.desc(nulls_last=True) if descending else field.asc(nulls_last=True)
        return queryset.order_by(order, "id")
