"""Host side of the run flow: stream.py, the wire protocol, frame sources and targets."""
