"""{{project_name}}: a JSON API on FastAPI over SQLite, with accounts."""
