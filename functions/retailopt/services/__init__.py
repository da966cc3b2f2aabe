"""Serverless services: the planning run as a chain of event handlers and an HTTP API.

`functions/main.py` holds the thin functions-framework entry points; everything they call lives
here: message schemas, the dedupe ledger, authentication, structured logs, the event bus and the
Cloud Storage / Pub/Sub adapters, and the local `serve` mode that runs the whole chain on one
machine.
"""
