"""Several `detector serve` replicas on one PostgreSQL store: leases (``leases.py``), the replica's held leases
and their renewal (``replica.py``), and source ownership as a pipeline stage (``ownership.py``)."""
