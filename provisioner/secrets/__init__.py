"""Secrets the server generates (webhook signing secrets, rotated verification secrets), and where they go."""
