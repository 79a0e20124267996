"""The JSON documents the stages write, as types: one module per stage (record.py is the machinery).
A stage imports only the types of what it writes and reads, so a change to one document reruns
only the stages that write or read it. No code here: dvc.yaml lists modules, not this file."""
