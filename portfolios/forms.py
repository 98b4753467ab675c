"""Browser forms for paper trading: each error lands beside its field, exact decimals only."""

from decimal import Decimal

from django import forms

from cryptodesk.forms import CoinChoiceField, amount_field  # shared with strategies
from cryptodesk.money import AMOUNT

from .models import Alert, CashTransfer, Order

SMALLEST = Decimal(1).scaleb(-AMOUNT["decimal_places"])
MAX_CASH = Decimal(10) ** 15
MAX_QUANTITY = Decimal(10) ** 18


class PortfolioForm(forms.Form):
    name = forms.CharField(max_length=80, widget=forms.TextInput(attrs={"placeholder": "e.g. Long-term"}))
    starting_cash = amount_field(
        label="Starting cash (USD)",
        min_value=Decimal(0),
        max_value=MAX_CASH,
        initial=Decimal(10_000),
        help_text="Paper money: deposit or withdraw more at any time.",
    )

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()


class OrderTicketForm(forms.Form):
    side = forms.ChoiceField(choices=Order.Side.choices, initial=Order.Side.BUY, widget=forms.RadioSelect)
    type = forms.ChoiceField(
        label="Order type", choices=Order.Type.choices, initial=Order.Type.MARKET, widget=forms.RadioSelect
    )
    coin = CoinChoiceField()
    quantity = amount_field(
        label="Quantity",
        min_value=SMALLEST,
        max_value=MAX_QUANTITY,
        error_messages={"min_value": "Enter a quantity above 0."},
    )
    limit_price = amount_field(
        label="Limit price (USD)",
        min_value=SMALLEST,
        max_value=MAX_QUANTITY,
        required=False,
        help_text="Buys fill at or below it, sells at or above it.",
        error_messages={"min_value": "Enter a limit price above 0."},
    )

    def clean(self) -> dict:
        data = super().clean()
        if (
            data.get("type") == Order.Type.LIMIT
            and data.get("limit_price") is None
            and "limit_price" not in self.errors
        ):
            self.add_error("limit_price", "A limit order needs a limit price.")
        if data.get("type") == Order.Type.MARKET:
            data["limit_price"] = None  # the field is hidden for market orders: whatever it holds is ignored
        return data


class TransferForm(forms.Form):
    kind = forms.ChoiceField(
        choices=CashTransfer.Kind.choices, initial=CashTransfer.Kind.DEPOSIT, widget=forms.RadioSelect
    )
    amount = amount_field(
        label="Amount (USD)",
        min_value=SMALLEST,
        max_value=MAX_CASH,
        error_messages={"min_value": "Enter an amount above 0."},
    )


class WatchlistForm(forms.Form):
    name = forms.CharField(max_length=80, widget=forms.TextInput(attrs={"placeholder": "e.g. Layer 1s"}))

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()


class WatchCoinForm(forms.Form):
    """Add a coin to a watchlist: the one chosen, else the first, else a new "My watchlist"."""

    coin = forms.CharField(max_length=100)
    watchlist = forms.IntegerField(required=False)


class AlertForm(forms.ModelForm):
    coin = CoinChoiceField()
    condition = forms.ChoiceField(choices=Alert.Condition.choices, initial=Alert.Condition.PRICE_ABOVE)
    threshold = amount_field(
        label="Threshold",
        min_value=-MAX_CASH,
        max_value=MAX_CASH,
        help_text="A price in USD, or a 24 h change in % (e.g. -5 for a 5 % fall).",
    )

    class Meta:
        model = Alert
        fields = ["coin", "condition", "threshold", "notify_email"]
        labels = {"notify_email": "Email me too"}

    def clean(self) -> dict:
        data = super().clean()
        price_condition = data.get("condition") in {Alert.Condition.PRICE_ABOVE, Alert.Condition.PRICE_BELOW}
        if price_condition and data.get("threshold") is not None and data["threshold"] <= 0:
            self.add_error("threshold", "A price threshold must be above 0.")
        return data
