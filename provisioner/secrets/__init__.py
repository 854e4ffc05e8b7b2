"""Secrets: the values config references point at (``refs``), and where server-made secrets go (``sink``)."""
