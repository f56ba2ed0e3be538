"""Real services for tests (SeaweedFS S3, PostgreSQL), started by session fixtures and stopped by pid."""
