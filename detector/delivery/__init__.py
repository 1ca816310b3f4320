"""Delivery of incident events to the systems cities run (webhooks, Open311, MQTT, NATS JetStream).

Each connector is a durable consumer of the event log: it keeps its own committed offset in the store, delivers
in log order and resumes after the last delivered event. The runner (``runner.py``) owns offsets, retries with
backoff and dead letters; a connector kind (``base.py``) only sends one event and says whether a failure can be
retried.
"""
