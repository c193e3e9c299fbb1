"""Tests of the data copy, on real MariaDB servers."""
