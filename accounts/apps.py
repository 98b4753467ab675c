from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from .api import schema  # noqa: F401 - registers the OpenAPI auth extension

    def seed_demo(self) -> list[str]:
        from .services import DEMO_EMAIL, DEMO_PASSWORD, ensure_demo_user

        ensure_demo_user()
        return [f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}"]
