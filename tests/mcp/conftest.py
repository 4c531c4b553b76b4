"""Fixtures for the MCP tests: the HTTP API tests' server fixtures (organization key, pods)."""

from tests.http.conftest import apis, org, pod

__all__ = ["apis", "org", "pod"]
