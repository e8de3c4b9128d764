"""osd: one JSON-RPC 2.0 API for a Linux node's networking and storage."""

__version__ = "0.1.0"
