"""Tools that run the course: the nightly regression run and the throughput benchmark."""
