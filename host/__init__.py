"""The run flow's command line: stream.py and what only it uses (session loop, frame sources, display, log)."""
