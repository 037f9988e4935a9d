"""The fault harness (issue 7): dodoso under gunicorn on PostgreSQL and S3, Collect-like
clients with a ledger, faults injected under load, invariants checked after each.

- ``harness``: the environment, the faults, a run and its checks, the long run;
- ``clients``: submissions, Collect's upload with retries, the ledger, torn bodies, races;
- ``verify``: the invariants, read from the database and the bucket directly;
- ``server`` (gunicorn from the Procfile, supervised), ``postgres`` (a private cluster),
  ``proxy`` (the fallback), ``s3`` (moto that can stop, start and freeze);
- ``soak``: a steady rate with memory sampled;
- ``python -m bench.faults run|soak``; the short run is ``pytest tests/faults`` on PostgreSQL.
"""
