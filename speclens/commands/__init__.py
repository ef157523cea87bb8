"""CLI command groups, one module per pipeline stage; registered in speclens/cli.py."""
