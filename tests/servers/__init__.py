"""Starters for real servers the tests and the benchmarks run privately (Ceph RGW)."""
