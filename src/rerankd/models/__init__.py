"""Scoring backends. Importing this package pulls torch; the library's light parts never do."""
