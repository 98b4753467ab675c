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
        currency=False,
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

    stop_price = amount_field(
        label="Stop price (USD)",
        min_value=SMALLEST,
        max_value=MAX_QUANTITY,
        required=False,
        help_text="The trigger: a sell stop below the price, a buy stop or a take profit above it.",
        error_messages={"min_value": "Enter a stop price above 0."},
    )
    trail_percent = amount_field(
        label="Trail (%)",
        min_value=Decimal("0.00000001"),
        max_value=Decimal("99.99999999"),
        currency=False,
        decimal_places=8,
        required=False,
        help_text="The stop follows the best price seen, this far behind it. Or give an amount.",
        error_messages={"min_value": "Enter a trail above 0 %%.", "max_value": "Enter a trail below 100 %%."},
    )
    trail_amount = amount_field(
        label="Trail amount (USD)",
        min_value=SMALLEST,
        max_value=MAX_QUANTITY,
        required=False,
        error_messages={"min_value": "Enter a trail amount above 0."},
    )
    stop_loss_price = amount_field(
        label="Stop loss (USD)",
        min_value=SMALLEST,
        max_value=MAX_QUANTITY,
        required=False,
        help_text="Optional: sells what this buy bought if the price falls to it.",
        error_messages={"min_value": "Enter a stop loss above 0."},
    )
    take_profit_price = amount_field(
        label="Take profit (USD)",
        min_value=SMALLEST,
        max_value=MAX_QUANTITY,
        required=False,
        help_text="Optional: sells it if the price rises to it; the first to trigger cancels the other.",
        error_messages={"min_value": "Enter a take profit above 0."},
    )

    # the fields each type shows: whatever a hidden field holds is ignored
    SHOWN = {
        "limit_price": {Order.Type.LIMIT, Order.Type.STOP_LIMIT},
        "stop_price": {Order.Type.STOP, Order.Type.STOP_LIMIT, Order.Type.TAKE_PROFIT},
        "trail_percent": {Order.Type.TRAILING_STOP},
        "trail_amount": {Order.Type.TRAILING_STOP},
    }
    TERMS = ("limit_price", "stop_price", "trail_percent", "trail_amount", "stop_loss_price", "take_profit_price")

    def clean(self) -> dict:
        data = super().clean()
        kind = data.get("type")
        for name, types in self.SHOWN.items():
            if kind not in types:
                data[name] = None
                self.errors.pop(name, None)
        if data.get("side") != Order.Side.BUY:  # a bracket protects a buy: hidden for sells
            for name in ("stop_loss_price", "take_profit_price"):
                data[name] = None
                self.errors.pop(name, None)
        if kind in {Order.Type.LIMIT, Order.Type.STOP_LIMIT} and data.get("limit_price") is None:
            if "limit_price" not in self.errors:
                self.add_error("limit_price", f"A {Order.Type(kind).label.lower()} order needs a limit price.")
        if kind in self.SHOWN["stop_price"] and data.get("stop_price") is None and "stop_price" not in self.errors:
            self.add_error("stop_price", f"A {Order.Type(kind).label.lower()} order needs a stop price.")
        if (
            kind == Order.Type.TRAILING_STOP
            and "trail_percent" not in self.errors
            and "trail_amount" not in self.errors
        ):
            if (data.get("trail_percent") is None) == (data.get("trail_amount") is None):
                self.add_error("trail_percent", "Give a trail in percent or an amount (one of them).")
        return data

    def terms(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in self.TERMS}


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


PRICE_CONDITIONS = {Alert.Condition.PRICE_ABOVE, Alert.Condition.PRICE_BELOW}
ALERT_CONDITIONS = [
    (Alert.Condition.PRICE_ABOVE, "Price rises above"),
    (Alert.Condition.PRICE_BELOW, "Price falls below"),
    (Alert.Condition.CHANGE_24H_ABOVE, "24 h change rises above"),
    (Alert.Condition.CHANGE_24H_BELOW, "24 h change falls below"),
]


class AlertForm(forms.ModelForm):
    """The condition decides which input counts: a price in USD, or a 24 h change in %; the other is ignored."""

    coin = CoinChoiceField()
    condition = forms.ChoiceField(choices=ALERT_CONDITIONS, initial=Alert.Condition.PRICE_ABOVE)
    price = amount_field(
        label="Price",
        min_value=SMALLEST,
        max_value=MAX_CASH,
        required=False,
        help_text="The price in US dollars, e.g. 65,000.",
        error_messages={"min_value": "A price must be above 0."},
    )
    change = amount_field(
        label="24 h change",
        min_value=None,
        max_value=None,
        currency=False,
        suffix="%",
        required=False,
        help_text="Percent over the last 24 hours: 5 for a 5 % rise, -5 for a 5 % fall.",
    )

    class Meta:
        model = Alert
        fields = ["coin", "condition", "notify_email"]
        labels = {"notify_email": "Email me too"}

    @property
    def threshold_field(self) -> str:
        """The input that holds the threshold for the chosen condition (where its errors go)."""
        return "price" if self.data.get("condition", self["condition"].value()) in PRICE_CONDITIONS else "change"

    def clean(self) -> dict:
        data = super().clean()
        name = self.threshold_field
        if data.get(name) is None and name not in self.errors:
            self.add_error(
                name,
                "Enter the price in USD that sets the alert off."
                if name == "price"
                else "Enter the 24 h change in % that sets it off.",
            )
        data["threshold"] = data.get(name)
        return data

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {name: data[name] for name in ("coin", "condition", "threshold", "notify_email")}
