"""Helpers every test folder may use."""
