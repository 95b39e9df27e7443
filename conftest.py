"""Tests (and nbval's notebook kernels, which inherit this environment) run in the CI profile."""
import os

os.environ.setdefault("COURSE_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
