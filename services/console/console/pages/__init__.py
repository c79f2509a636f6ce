"""The console's pages, one module per kind of person: clerk, unit, auditor, admin, and signing in."""
