"""Drive a real ComfyUI server: start/stop it, submit graphs, read results (tests and demo)."""
