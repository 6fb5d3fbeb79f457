"""Prefect flows: thin orchestration over crmsum.pipeline."""
