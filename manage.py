#!/usr/bin/env python
"""Django's command-line utility for CryptoDesk."""

import os
import sys

# Commands that only read models and migration files: they sign nothing, so a fresh checkout runs them
# without a SECRET_KEY. Everything else (serving, migrating, checks) still needs the real one.
OFFLINE_COMMANDS = frozenset({"makemigrations", "showmigrations", "sqlmigrate", "help", "version"})
OFFLINE_KEY = "offline-command-key-signs-nothing-never-used-to-serve-0123456789"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cryptodesk.settings")
    if len(sys.argv) > 1 and sys.argv[1] in OFFLINE_COMMANDS:
        os.environ.setdefault("SECRET_KEY", OFFLINE_KEY)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
