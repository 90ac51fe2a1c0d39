"""Export jobs and what they hold: authorizations, sealed secrets, setup, status, health, backfill."""
