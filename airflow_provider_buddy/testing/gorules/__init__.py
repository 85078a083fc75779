"""The emulated GoRules BRMS API: scenario specs, runs, state, routes, control routes and the Python API
(:class:`~airflow_provider_buddy.testing.gorules.mixin.GoRulesEmulatorMixin`). Nothing here knows about Buddy."""
