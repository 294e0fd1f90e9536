"""The trust model: pools, providers, audiences, workloads and policies."""
