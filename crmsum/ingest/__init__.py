"""Ingest glue: source records -> anonymizer -> lake."""
