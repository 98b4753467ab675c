"""Database backends of our own: an SQLite that keeps every digit of a decimal."""
