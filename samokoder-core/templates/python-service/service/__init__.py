"""{{project_name}}: a JSON web service on Python's standard library."""
