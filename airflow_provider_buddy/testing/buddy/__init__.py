"""The emulated Buddy.Works REST API: scenario specs, runs, state, routes, control routes and the Python API
(:class:`~airflow_provider_buddy.testing.buddy.mixin.BuddyEmulatorMixin`). Nothing here knows about GoRules."""
