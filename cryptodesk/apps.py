from django.apps import AppConfig


class CryptodeskConfig(AppConfig):
    name = "cryptodesk"
    verbose_name = "CryptoDesk"
