"""Pure backtest maths: history in, signals → positions → fills → equity and trades out. No ORM here."""
