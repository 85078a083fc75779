"""What the Buddy and GoRules sides share and Airflow never sees directly: argument checks, the waiting
vocabulary and decisions, backoff, re-attach, and the worker-side waits of each service."""
