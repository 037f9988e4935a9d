"""Use cases: compose queries, check rules, raise Problems and flush. Never commit."""
