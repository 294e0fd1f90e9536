"""Helpers that run real dependencies (etcd, ...) for tests and the local run."""
