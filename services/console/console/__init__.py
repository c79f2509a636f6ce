"""docroute console: server-rendered pages for clerks, units, auditors and admins over the public APIs."""
