"""Submission exports: the column model (``columns``), spreadsheet safety (``safety``) and the
streaming writers (``writers``). Pure code: the SQL is in ``server.queries.exports`` and the
use cases in ``server.services.exports``."""
