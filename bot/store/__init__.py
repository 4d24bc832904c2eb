"""The SQLite store: the database and its migrations, and the tables of each concern."""
