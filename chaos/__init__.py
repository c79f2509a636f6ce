"""The fault suite: private servers, docroute in real-server mode, injected faults and the reconciliation."""
