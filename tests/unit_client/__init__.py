"""Tests of the docroute-unit client."""
