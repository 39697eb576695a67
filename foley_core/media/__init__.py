"""Media I/O: video decoding and exact frame sampling, audio checks, muxing (PyAV)."""
