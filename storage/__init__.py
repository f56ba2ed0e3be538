"""Storage: URIs and object stores, WebDataset shards, Parquet tables, SA-Co JSON and the SQL state store.

Nothing here imports from `engine`.
"""
